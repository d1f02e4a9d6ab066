using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Middleware.Auth;
using Relay.Middleware.Errors;
using Relay.Middleware.Hosting;
using Relay.Middleware.Playground;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds Relay to the request pipeline.</summary>
public static class RelayApplicationBuilderExtensions
{
    /// <summary>
    /// Adds Relay's step to YARP's proxy pipeline: call it inside <c>MapReverseProxy(proxy =&gt; { proxy.UseRelay(); ... })</c>.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseRelay(this IReverseProxyApplicationBuilder proxy)
    {
        // Issue 15: resumable streams (a pass-through on routes without Resume:Enabled); outside Relay's step, whose lifetime it feeds.
        proxy.UseMiddleware<Relay.Middleware.Resume.ResumableStreamMiddleware>();
        proxy.UseMiddleware<RelayProxyMiddleware>();
        // Retries and failover before the first byte: each attempt goes through the load balancing that follows.
        proxy.UseMiddleware<Relay.Middleware.Compression.RouteResponseCompressionMiddleware>();
        proxy.UseMiddleware<Relay.Middleware.Resilience.UpstreamRetryMiddleware>();
        return proxy;
    }

    /// <summary>
    /// Turns unhandled exceptions into an OpenAI-style 500 (before the first byte) so that bad input never
    /// produces an HTML error page or a stack trace; each is logged at Error with its type and stack.
    /// </summary>
    public static IApplicationBuilder UseRelayErrors(this IApplicationBuilder app)
        => app.UseExceptionHandler(RelayExceptionHandler.Options());

    /// <summary>
    /// Serves one-time stream tickets: <c>POST /relay/v1/tickets</c> and <c>GET /relay/v1/streams/{ticket}</c> are
    /// turned into the chat request they stand for, which then takes the route's own proxy pipeline. Call it BEFORE
    /// <c>UseRouting()</c> (with <c>WebApplication</c>, call <c>UseRouting()</c> explicitly after it).
    /// </summary>
    public static IApplicationBuilder UseRelayTickets(this IApplicationBuilder app)
        => app.UseMiddleware<Relay.Middleware.Resume.ResumeEndpointsMiddleware>() // Issue 15: resume and cancel of resumable streams.
            .UseMiddleware<StreamTicketsMiddleware>();

    /// <summary>Serves the playground page (plain HTML and JavaScript) at <c>GET /</c>.</summary>
    public static IEndpointConventionBuilder MapRelayPlayground(this IEndpointRouteBuilder endpoints)
        => endpoints.MapGet("/", PlaygroundPage.WriteAsync);

    /// <summary>Answers requests that match no route with an OpenAI-style 404.</summary>
    public static IEndpointConventionBuilder MapRelayNotFound(this IEndpointRouteBuilder endpoints)
        => endpoints.MapFallback(static async context => await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status404NotFound,
            $"No route matches {context.Request.Method} {context.Request.Path}.", RelayErrorTypes.InvalidRequest, "unknown_route"));
}

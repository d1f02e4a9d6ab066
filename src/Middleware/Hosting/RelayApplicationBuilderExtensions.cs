using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Relay.Middleware.Auth;
using Relay.Middleware.Errors;
using Relay.Middleware.Hosting;
using Relay.Middleware.Playground;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds Relay to the request pipeline.</summary>
public static class RelayApplicationBuilderExtensions
{
    /// <summary>
    /// Wires Relay into the app in the order it needs, the same as the Relay host: <see cref="UseRelayErrors"/>,
    /// <see cref="UseRelayTickets"/>, <c>UseRouting()</c>, <c>UseCors()</c>, the playground at <c>GET /</c> when
    /// <c>Relay:Playground:Enabled</c> is true, YARP's proxy pipeline with <see cref="UseRelay"/>, session affinity,
    /// load balancing and passive health checks (the circuit breakers), and <see cref="MapRelayNotFound"/>.
    /// Needs <c>AddRelay</c> and <c>AddReverseProxy()...AddRelayTransforms()</c>. An app that needs its own
    /// middleware between these steps calls them one by one instead.
    /// </summary>
    public static TApp MapRelay<TApp>(this TApp app)
        where TApp : IApplicationBuilder, IEndpointRouteBuilder
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = app.ApplicationServices.GetService<IOptions<RelayOptions>>()
            ?? throw new InvalidOperationException("MapRelay needs Relay's services: call builder.Services.AddRelay(...) first.");
        if (app.ApplicationServices.GetService<Yarp.ReverseProxy.Configuration.IProxyConfigProvider>() is null)
        {
            throw new InvalidOperationException("MapRelay needs YARP: call builder.Services.AddReverseProxy().AddRelayTransforms() (and LoadFromConfig(...) for a ReverseProxy section) first.");
        }

        app.UseRelayErrors();
        // Ticket URLs become the chat request they stand for before routing picks the route.
        app.UseRelayTickets();
        app.UseRouting();
        app.UseCors();
        if (options.Value.Playground.Enabled == true)
        {
            app.MapRelayPlayground();
        }

        app.MapReverseProxy(static pipeline =>
        {
            pipeline.UseRelay();
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
        app.MapRelayNotFound();
        return app;
    }

    /// <summary>
    /// Adds Relay's step to YARP's proxy pipeline: call it inside <c>MapReverseProxy(proxy =&gt; { proxy.UseRelay(); ... })</c>.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseRelay(this IReverseProxyApplicationBuilder proxy)
    {
        // Resumable streams (a pass-through on routes without Resume:Enabled); outside Relay's step, whose lifetime it feeds.
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
        => app.UseMiddleware<Relay.Middleware.Resume.ResumeEndpointsMiddleware>() // Resume and cancel of resumable streams.
            .UseMiddleware<StreamTicketsMiddleware>();

    /// <summary>
    /// Serves the playground page (plain HTML and JavaScript) at <c>GET /</c>, unless <c>Relay:Playground:Enabled</c>
    /// is false (then nothing is mapped).
    /// </summary>
    public static IEndpointConventionBuilder MapRelayPlayground(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var enabled = endpoints.ServiceProvider.GetService<IOptions<RelayOptions>>()?.Value.Playground.Enabled;
        return enabled == false ? NoEndpoint.Instance : endpoints.MapGet("/", PlaygroundPage.WriteAsync);
    }

    /// <summary>Answers requests that match no route with an OpenAI-style 404.</summary>
    public static IEndpointConventionBuilder MapRelayNotFound(this IEndpointRouteBuilder endpoints)
        => endpoints.MapFallback(static async context => await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status404NotFound,
            $"No route matches {context.Request.Method} {context.Request.Path}.", RelayErrorTypes.InvalidRequest, "unknown_route"));
}

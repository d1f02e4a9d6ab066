using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Relay.Middleware.Errors;
using Relay.Middleware.Hosting;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Adds Relay to the request pipeline.</summary>
public static class RelayApplicationBuilderExtensions
{
    /// <summary>
    /// Adds Relay's step to YARP's proxy pipeline: call it inside <c>MapReverseProxy(proxy =&gt; { proxy.UseRelay(); ... })</c>.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseRelay(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<RelayProxyMiddleware>();
        return proxy;
    }

    /// <summary>
    /// Turns unhandled exceptions into an OpenAI-style 500 (before the first byte) so that bad input never
    /// produces an HTML error page or a stack trace.
    /// </summary>
    public static IApplicationBuilder UseRelayErrors(this IApplicationBuilder app)
        => app.Use(static async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (Exception) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status500InternalServerError,
                    "Relay failed to process the request.", RelayErrorTypes.ServerError, "relay_error");
            }
        });

    /// <summary>Answers requests that match no route with an OpenAI-style 404.</summary>
    public static IEndpointConventionBuilder MapRelayNotFound(this IEndpointRouteBuilder endpoints)
        => endpoints.MapFallback(static async context => await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status404NotFound,
            $"No route matches {context.Request.Method} {context.Request.Path}.", RelayErrorTypes.InvalidRequest, "unknown_route"));
}

using Microsoft.Net.Http.Headers;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Cors;
using Relay.Middleware.Streaming;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Relay.Middleware.Hosting;

/// <summary>
/// Adds Relay's transforms to every YARP route: removal of Relay-only request headers, of the upstream's
/// <c>Server</c> and (unless the route lets the upstream own CORS) <c>Access-Control-*</c> response headers, and
/// SSE relaying.
/// </summary>
internal sealed class RelayTransformProvider : ITransformProvider
{
    private readonly SseResponseTransform _sse;
    private readonly RouteSettingsResolver _settings;

    public RelayTransformProvider(SseResponseTransform sse, RouteSettingsResolver settings)
    {
        _sse = sse;
        _settings = settings;
    }

    public void ValidateRoute(TransformRouteValidationContext context)
    {
        RouteSettings settings;
        try
        {
            settings = _settings.Get(context.Route);
        }
        catch (InvalidOperationException ex)
        {
            // A route metadata value the binder cannot convert ("Relay.Cors.PassUpstreamHeaders": "maybe").
            context.Errors.Add(ex);
            return;
        }

        // A route that lets the upstream own CORS ignores the default allowed origins; naming its own as well is a contradiction.
        var ownOrigins = context.Route.Metadata?.Keys.Any(static k => k.StartsWith("Relay.Cors.AllowedOrigins", StringComparison.OrdinalIgnoreCase)) == true;
        if (settings.Cors.PassUpstreamHeaders && ownOrigins)
        {
            context.Errors.Add(new ArgumentException(
                $"Route '{context.Route.RouteId}': Relay.Cors.PassUpstreamHeaders (the upstream owns CORS) cannot be combined with Relay.Cors.AllowedOrigins (Relay owns CORS)."));
        }
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context)
    {
        context.AddRequestHeaderRemove(StreamTimeouts.HeaderName);

        // Response transforms run in order, and the SSE transform relays the whole stream: these go first.
        // The upstream's software and version are none of the client's business (nginx hides them too).
        context.AddResponseHeaderRemove(HeaderNames.Server, ResponseCondition.Always);
        if (!_settings.Get(context.Route).Cors.PassUpstreamHeaders)
        {
            context.ResponseTransforms.Add(UpstreamCorsHeadersRemoveTransform.Instance);
        }

        context.ResponseTransforms.Add(AcceptedDeliveryTransform.Instance);
        context.ResponseTransforms.Add(_sse);
    }
}

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
        // Strict, like the Relay section: a key Relay does not read for a route ("Relay.Cadence.MaxToken", or a
        // global-only "Relay.WebSocket.Enabled") fails at start-up rather than silently doing nothing.
        foreach (var key in context.Route.Metadata?.Keys ?? [])
        {
            if (key.StartsWith(RouteSettings.MetadataPrefix, StringComparison.OrdinalIgnoreCase)
                && RelayConfigurationKeys.RouteKeyProblem(key[RouteSettings.MetadataPrefix.Length..].Replace('.', ':')) is { } problem)
            {
                context.Errors.Add(new ArgumentException($"Route '{context.Route.RouteId}', metadata '{key}': {problem}"));
            }
        }

        if (context.Errors.Count > 0)
        {
            return;
        }

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

        foreach (var problem in Relay.Middleware.Resume.ResumeOptionsRules.Problems(settings.Resume, "Relay.Resume."))
        {
            context.Errors.Add(new ArgumentException($"Route '{context.Route.RouteId}': {problem}"));
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
        var cluster = context.Cluster;
        Check(cluster.Metadata, RelayConfigurationKeys.ClusterMetadata, $"Cluster '{cluster.ClusterId}'");
        foreach (var (id, destination) in cluster.Destinations ?? new Dictionary<string, Yarp.ReverseProxy.Configuration.DestinationConfig>())
        {
            Check(destination.Metadata, RelayConfigurationKeys.DestinationMetadata, $"Cluster '{cluster.ClusterId}', destination '{id}'");
        }

        void Check(IReadOnlyDictionary<string, string>? metadata, string[] known, string where)
        {
            foreach (var key in metadata?.Keys ?? [])
            {
                if (key.StartsWith(RouteSettings.MetadataPrefix, StringComparison.OrdinalIgnoreCase) && !known.Contains(key, StringComparer.OrdinalIgnoreCase))
                {
                    var hint = RelayConfigurationKeys.NearestHint(key, known, static k => k);
                    context.Errors.Add(new ArgumentException(RelayConfigurationKeys.Sentence(
                        $"{where}, metadata '{key}': Relay reads no such key here{(hint.Length > 0 ? hint : $" (it reads {(known.Length > 0 ? string.Join(", ", known) : "none")})")}")));
                }
            }
        }
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

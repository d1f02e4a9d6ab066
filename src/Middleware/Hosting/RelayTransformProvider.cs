using Relay.Middleware.Auth;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Streaming;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Relay.Middleware.Hosting;

/// <summary>Adds Relay's transforms to every YARP route: SSE relaying, and removal of Relay-only request headers.</summary>
internal sealed class RelayTransformProvider : ITransformProvider
{
    private readonly SseResponseTransform _sse;

    public RelayTransformProvider(SseResponseTransform sse) => _sse = sse;

    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context)
    {
        context.AddRequestHeaderRemove(StreamTimeouts.HeaderName);
        context.AddRequestTransform(QueryCredentialFeature.RestoreOnUnacceptingRoute);
        context.ResponseTransforms.Add(_sse);
    }
}

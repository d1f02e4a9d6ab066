using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Requests;

/// <summary>
/// Request header values that are not ASCII go upstream as the bytes the client sent. Browsers send UTF-8 in
/// <c>Last-Event-ID</c> when an <c>EventSource</c> reconnects, and any header may carry text like <c>café</c>. Kestrel
/// decodes header values as UTF-8 (and refuses invalid UTF-8 with a 400), but HttpClient sends only ASCII unless it
/// is given an encoding: it throws "Request headers must contain only ASCII characters", and the client would get a
/// 502 for an upstream that was never called. Clusters that do not choose YARP's
/// <c>HttpClient:RequestHeaderEncoding</c> get UTF-8, so the bytes Kestrel decoded are the bytes sent, as nginx
/// forwards them. A host that makes Kestrel decode headers as Latin-1 sets the same encoding on its clusters.
/// </summary>
internal sealed class ForwardedHeaderEncoding : IProxyConfigFilter
{
    /// <summary>The encoding name YARP passes to <see cref="System.Text.Encoding.GetEncoding(string)"/>.</summary>
    internal const string Default = "utf-8";

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.HttpClient?.RequestHeaderEncoding is not null)
        {
            return ValueTask.FromResult(cluster);
        }

        var client = (cluster.HttpClient ?? new HttpClientConfig()) with { RequestHeaderEncoding = Default };
        return ValueTask.FromResult(cluster with { HttpClient = client });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
        => ValueTask.FromResult(route);
}

using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Hosting;

/// <summary>
/// Relay's defaults for every cluster; a cluster that sets one of these itself keeps its own.
/// <list type="bullet">
/// <item>YARP cancels a request after 100 s without activity by default, which would cut a long silent stream (a
/// reasoning model thinking). Relay's own timeouts (first token, idle, maximum duration) govern instead, so
/// clusters that do not set <c>HttpRequest:ActivityTimeout</c> get one longer than any stream.</item>
/// <item>Request header values that are not ASCII go upstream as the bytes the client sent. Browsers send UTF-8 in
/// <c>Last-Event-ID</c> when an <c>EventSource</c> reconnects, and any header may carry text like <c>café</c>.
/// Kestrel decodes header values as UTF-8 (and refuses invalid UTF-8 with a 400), but HttpClient sends only ASCII
/// unless it is given an encoding: it throws "Request headers must contain only ASCII characters", and the client
/// got a 502 for an upstream that was never called. Clusters that do not set <c>HttpClient:RequestHeaderEncoding</c>
/// get UTF-8, so the bytes Kestrel decoded are the bytes sent, as nginx forwards them. A host that makes Kestrel
/// decode headers as Latin-1 sets the same encoding on its clusters.</item>
/// </list>
/// </summary>
internal sealed class RelayClusterConfigFilter : IProxyConfigFilter
{
    internal static readonly TimeSpan ActivityTimeout = TimeSpan.FromDays(1);

    /// <summary>The request header encoding, a name for <see cref="System.Text.Encoding.GetEncoding(string)"/>.</summary>
    internal const string RequestHeaderEncoding = "utf-8";

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.HttpRequest?.ActivityTimeout is null)
        {
            cluster = cluster with { HttpRequest = (cluster.HttpRequest ?? new ForwarderRequestConfig()) with { ActivityTimeout = ActivityTimeout } };
        }

        if (cluster.HttpClient?.RequestHeaderEncoding is null)
        {
            cluster = cluster with { HttpClient = (cluster.HttpClient ?? new HttpClientConfig()) with { RequestHeaderEncoding = RequestHeaderEncoding } };
        }

        return ValueTask.FromResult(cluster);
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
        => ValueTask.FromResult(route);
}

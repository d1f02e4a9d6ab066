using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Hosting;

/// <summary>
/// YARP cancels a request after 100 s without activity by default, which would cut a long silent stream (a
/// reasoning model thinking). Relay's own timeouts (first token, idle, maximum duration) govern instead, so
/// clusters that do not set <c>HttpRequest:ActivityTimeout</c> get one longer than any stream.
/// </summary>
internal sealed class RelayClusterConfigFilter : IProxyConfigFilter
{
    internal static readonly TimeSpan ActivityTimeout = TimeSpan.FromDays(1);

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.HttpRequest?.ActivityTimeout is not null)
        {
            return ValueTask.FromResult(cluster);
        }

        var request = (cluster.HttpRequest ?? new ForwarderRequestConfig()) with { ActivityTimeout = ActivityTimeout };
        return ValueTask.FromResult(cluster with { HttpRequest = request });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
        => ValueTask.FromResult(route);
}

using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Resilience;

/// <summary>
/// Turns on Relay's circuit breaker (<see cref="DestinationCircuitBreaker"/>, a YARP passive health policy) for every
/// cluster that does not configure passive health itself. Its thresholds come from the request's route settings
/// (<c>Resilience:BreakerFailures</c>, <c>Resilience:BreakSeconds</c>).
/// </summary>
internal sealed class ResilienceClusterConfigFilter : IProxyConfigFilter
{
    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.HealthCheck?.Passive is not null)
        {
            return ValueTask.FromResult(cluster);
        }

        var health = (cluster.HealthCheck ?? new HealthCheckConfig()) with
        {
            Passive = new PassiveHealthCheckConfig { Enabled = true, Policy = DestinationCircuitBreaker.PolicyName },
        };
        return ValueTask.FromResult(cluster with { HealthCheck = health });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
        => ValueTask.FromResult(route);
}

using System.Diagnostics;
using System.Diagnostics.Metrics;
using Relay.Middleware.Accounting;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Resilience;

/// <summary>
/// The resilience instruments on the <c>Relay</c> meter: <c>relay.upstream.attempts</c> (attempts per client
/// request, by outcome), <c>relay.upstream.breaker.opened</c> (breakers that opened) and
/// <c>relay.upstream.breaker.open</c> (1 for each destination whose breaker is open now, 0 otherwise).
/// </summary>
internal sealed class ResilienceMetrics
{
    private readonly Histogram<int> _attempts;
    private readonly Counter<long> _opened;

    public ResilienceMetrics(IMeterFactory meterFactory, IServiceProvider services)
    {
        var meter = meterFactory.Create(RelayMetrics.MeterName);
        _attempts = meter.CreateHistogram<int>("relay.upstream.attempts", "{attempt}", "Upstream attempts per client request, by relay.upstream.outcome.");
        _opened = meter.CreateCounter<long>("relay.upstream.breaker.opened", "{breaker}", "Times a destination's circuit breaker opened.");
        // The proxy state is resolved lazily: it exists only once YARP is registered.
        meter.CreateObservableGauge("relay.upstream.breaker.open", () => Observe(services), "{breaker}", "1 for each destination whose circuit breaker is open.");
    }

    public void RecordAttempts(UpstreamAttemptsFeature attempts, string? route)
        => _attempts.Record(attempts.Attempts, new TagList { { "relay.route", route }, { "relay.upstream.outcome", attempts.Outcome } });

    public void BreakerOpened(string clusterId, string destinationId)
        => _opened.Add(1, new TagList { { "relay.cluster", clusterId }, { "relay.destination", destinationId } });

    private static IEnumerable<Measurement<int>> Observe(IServiceProvider services)
    {
        if (services.GetService(typeof(IProxyStateLookup)) is not IProxyStateLookup lookup)
        {
            yield break;
        }

        foreach (var cluster in lookup.GetClusters())
        {
            foreach (var destination in cluster.Destinations.Values)
            {
                yield return new Measurement<int>(destination.Health.Passive == DestinationHealth.Unhealthy ? 1 : 0,
                    new KeyValuePair<string, object?>("relay.cluster", cluster.ClusterId),
                    new KeyValuePair<string, object?>("relay.destination", destination.DestinationId));
            }
        }
    }
}

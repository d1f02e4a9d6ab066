using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Configuration;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Resilience;

/// <summary>
/// A circuit breaker per destination, as a YARP passive health policy: after
/// <see cref="ResilienceOptions.BreakerFailures"/> consecutive failed attempts (unreachable, 502, 503, 504; a 429 is
/// one caller's rate limit, not the destination's health) the destination is marked unhealthy for
/// <see cref="ResilienceOptions.BreakSeconds"/>. YARP's passive health is the breaker rather than the resilience
/// pipeline's, because destination health is what YARP's load balancing reads: an open destination is never picked,
/// a request fails over without spending an attempt on it. After the break YARP reactivates the destination (health
/// unknown) and the next request tries it: a success closes the breaker, a failure opens it again at once (half-open).
/// When every destination of a cluster is open there is no alternative to protect, and waiting out the break would
/// only hide the upstream's return (a single-destination route stayed refused for the whole break after its upstream
/// restarted): one request per <see cref="ProbeInterval"/> is let through to probe an open destination
/// (<see cref="TryTakeProbe"/>), the others are answered at once without calling anything, so the route is served
/// again within about a second of its upstream's return. Envoy does the like with its panic threshold (when too few
/// hosts are healthy it balances across all of them); the probe keeps a dead upstream from taking every request.
/// </summary>
internal sealed partial class DestinationCircuitBreaker : IPassiveHealthCheckPolicy
{
    /// <summary>The policy's name in a cluster's <c>HealthCheck:Passive:Policy</c>.</summary>
    public const string PolicyName = "Relay.CircuitBreaker";

    /// <summary>How often one request probes a destination while every destination of its cluster is open.</summary>
    public static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);

    private readonly ConditionalWeakTable<DestinationState, BreakerState> _states = new();
    private readonly IDestinationHealthUpdater _health;
    private readonly RouteSettingsResolver _settings;
    private readonly TimeProvider _time;
    private readonly ResilienceMetrics _metrics;
    private readonly ILogger _logger;

    public DestinationCircuitBreaker(IDestinationHealthUpdater health, RouteSettingsResolver settings, TimeProvider time, ResilienceMetrics metrics,
        ILogger<DestinationCircuitBreaker> logger)
    {
        _health = health;
        _settings = settings;
        _time = time;
        _metrics = metrics;
        _logger = logger;
    }

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var options = context.Features.Get<RelayRequestFeature>()?.Route.Resilience ?? _settings.Get(null).Resilience;
        if (options.BreakerFailures == 0 || IsFailure(context) is not { } failed)
        {
            return;
        }

        var state = _states.GetOrCreateValue(destination);
        var breakTime = TimeSpan.FromSeconds(options.BreakSeconds);
        bool wasOpen;
        lock (state)
        {
            wasOpen = state.OpenUntil != 0;
            if (!failed)
            {
                state.ConsecutiveFailures = 0;
                if (destination.Health.Passive != DestinationHealth.Unhealthy && state.OpenUntil == 0)
                {
                    return;
                }

                state.OpenUntil = 0;
            }
            else
            {
                state.ConsecutiveFailures++;
                if (state.ConsecutiveFailures < options.BreakerFailures)
                {
                    return;
                }

                var now = _time.GetTimestamp();
                state.OpenUntil = now + Ticks(breakTime);
                state.NextProbeAt = now + Ticks(breakTime < ProbeInterval ? breakTime : ProbeInterval);
            }
        }

        if (!failed)
        {
            Log.BreakerClosed(_logger, cluster.ClusterId, destination.DestinationId);
            _health.SetPassive(cluster, destination, DestinationHealth.Healthy, breakTime);
            return;
        }

        if (!wasOpen)
        {
            // Not again for a failed probe, or for a request that was already under way when the breaker opened.
            Log.BreakerOpened(_logger, cluster.ClusterId, destination.DestinationId, options.BreakSeconds);
            _metrics.BreakerOpened(cluster.ClusterId, destination.DestinationId);
        }

        // Health.Passive changes at once (the next request sees it); YARP updates the cluster's available
        // destinations in the background and reactivates the destination after the break.
        _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, breakTime);
    }

    /// <summary>Whether a destination is skipped: its breaker is open (or YARP's active health check failed it).</summary>
    public static bool IsOpen(DestinationState destination)
        => destination.Health.Passive == DestinationHealth.Unhealthy || destination.Health.Active == DestinationHealth.Unhealthy;

    /// <summary>
    /// With every destination of a cluster open: the one destination a request may probe now, its probe slot taken
    /// until <see cref="ProbeInterval"/> from now (so concurrent requests send one probe, not a burst); null when no
    /// probe is due. Only breakers this policy opened are probed: a destination YARP's active health check failed is
    /// that check's to bring back.
    /// </summary>
    public DestinationState? TryTakeProbe(IReadOnlyList<DestinationState> destinations)
    {
        var now = _time.GetTimestamp();
        foreach (var destination in destinations)
        {
            if (destination.Health.Active == DestinationHealth.Unhealthy || !_states.TryGetValue(destination, out var state))
            {
                continue;
            }

            lock (state)
            {
                if (state.OpenUntil == 0 || now < state.NextProbeAt)
                {
                    continue;
                }

                state.NextProbeAt = now + Ticks(ProbeInterval);
            }

            Log.Probing(_logger, destination.DestinationId);
            return destination;
        }

        return null;
    }

    /// <summary>How long until the first of <paramref name="destinations"/> is tried again, by a probe or after its break (at least one second).</summary>
    public TimeSpan RetryAfter(IEnumerable<DestinationState> destinations)
    {
        var now = _time.GetTimestamp();
        var soonest = long.MaxValue;
        foreach (var destination in destinations)
        {
            if (_states.TryGetValue(destination, out var state))
            {
                lock (state)
                {
                    soonest = Math.Min(soonest, Math.Min(state.OpenUntil, state.NextProbeAt));
                }
            }
        }

        var seconds = soonest == long.MaxValue ? 1 : Math.Ceiling((double)(soonest - now) / _time.TimestampFrequency);
        return TimeSpan.FromSeconds(Math.Max(1, seconds));
    }

    /// <summary>Whether the attempt counts against its destination; null when it says nothing about it (the client left).</summary>
    private static bool? IsFailure(HttpContext context)
    {
        if (context.Features.Get<IForwarderErrorFeature>() is { } error)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                return null;
            }

            return error.Error is ForwarderError.Request or ForwarderError.RequestTimedOut;
        }

        return context.Response.StatusCode is StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout;
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private sealed class BreakerState
    {
        public int ConsecutiveFailures;

        /// <summary>When the break ends (a timestamp); 0 while the breaker is closed.</summary>
        public long OpenUntil;

        /// <summary>When an open destination may next be probed, should every destination of its cluster be open.</summary>
        public long NextProbeAt;
    }

    private static partial class Log
    {
        [LoggerMessage(1400, LogLevel.Warning, "Circuit breaker opened: cluster {ClusterId}, destination {DestinationId} is skipped for {BreakSeconds} s.", EventName = "BreakerOpened")]
        public static partial void BreakerOpened(ILogger logger, string clusterId, string destinationId, double breakSeconds);

        [LoggerMessage(1401, LogLevel.Information, "Circuit breaker closed: cluster {ClusterId}, destination {DestinationId} answered again.", EventName = "BreakerClosed")]
        public static partial void BreakerClosed(ILogger logger, string clusterId, string destinationId);

        [LoggerMessage(1402, LogLevel.Debug, "Every destination's circuit breaker is open: probing {DestinationId} with this request.", EventName = "BreakerProbe")]
        public static partial void Probing(ILogger logger, string destinationId);
    }
}

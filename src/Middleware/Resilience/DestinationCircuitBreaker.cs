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
/// a request fails over without spending an attempt on it, and when every destination is open Relay answers at once
/// without calling anything. After the break YARP reactivates the destination (health unknown) and the next request
/// tries it: a success closes the breaker, a failure opens it again at once (half-open).
/// </summary>
internal sealed partial class DestinationCircuitBreaker : IPassiveHealthCheckPolicy
{
    /// <summary>The policy's name in a cluster's <c>HealthCheck:Passive:Policy</c>.</summary>
    public const string PolicyName = "Relay.CircuitBreaker";

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
        lock (state)
        {
            if (!failed)
            {
                state.ConsecutiveFailures = 0;
                if (destination.Health.Passive == DestinationHealth.Unhealthy || state.OpenUntil != 0)
                {
                    state.OpenUntil = 0;
                    _health.SetPassive(cluster, destination, DestinationHealth.Healthy, breakTime);
                }

                return;
            }

            state.ConsecutiveFailures++;
            if (state.ConsecutiveFailures < options.BreakerFailures)
            {
                return;
            }

            state.OpenUntil = _time.GetTimestamp() + (long)(breakTime.TotalSeconds * _time.TimestampFrequency);
        }

        Log.BreakerOpened(_logger, cluster.ClusterId, destination.DestinationId, options.BreakSeconds);
        _metrics.BreakerOpened(cluster.ClusterId, destination.DestinationId);
        // Health.Passive changes at once (the next request sees it); YARP updates the cluster's available
        // destinations in the background and reactivates the destination after the break.
        _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, breakTime);
    }

    /// <summary>Whether a destination is skipped: its breaker is open (or YARP's active health check failed it).</summary>
    public static bool IsOpen(DestinationState destination)
        => destination.Health.Passive == DestinationHealth.Unhealthy || destination.Health.Active == DestinationHealth.Unhealthy;

    /// <summary>How long until the first of <paramref name="destinations"/> is tried again (at least one second).</summary>
    public TimeSpan RetryAfter(IEnumerable<DestinationState> destinations)
    {
        var now = _time.GetTimestamp();
        var soonest = long.MaxValue;
        foreach (var destination in destinations)
        {
            if (_states.TryGetValue(destination, out var state))
            {
                soonest = Math.Min(soonest, Volatile.Read(ref state.OpenUntil));
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

    private sealed class BreakerState
    {
        public int ConsecutiveFailures;
        public long OpenUntil;
    }

    private static partial class Log
    {
        [LoggerMessage(1400, LogLevel.Warning, "Circuit breaker opened: cluster {ClusterId}, destination {DestinationId} is skipped for {BreakSeconds} s.", EventName = "BreakerOpened")]
        public static partial void BreakerOpened(ILogger logger, string clusterId, string destinationId, double breakSeconds);
    }
}

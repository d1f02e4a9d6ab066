using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Errors;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Resilience;

/// <summary>
/// Retries and failover before the first byte, in YARP's proxy pipeline (after Relay's own step, before load
/// balancing): each attempt lets YARP pick a destination among those not yet tried whose breaker is closed (or the
/// one open destination a request probes when all are open, <see cref="DestinationCircuitBreaker.TryTakeProbe"/>), so a
/// retry goes through YARP's load balancing, per-destination transforms and passive health like a first attempt.
/// Polly's retry strategy (the engine of Microsoft.Extensions.Http.Resilience) runs the attempts with exponential
/// backoff and jitter, or the upstream's <c>Retry-After</c>. The attempts live here rather than in a resilience
/// handler on YARP's <c>HttpClient</c> because a handler sees one destination's URL after the transforms ran: it
/// cannot fail over to another destination with that destination's credentials and path. A retry happens only when
/// the client has received nothing: an upstream answer to be retried is held back by
/// <see cref="RetryableResponseTransform"/> before YARP copies its body; once a response has started, a failure
/// stays the stream's final error event. The request body is replayed from the copy Relay holds.
/// </summary>
internal sealed partial class UpstreamRetryMiddleware
{
    private readonly RequestDelegate _next;
    private readonly TimeProvider _time;
    private readonly DestinationCircuitBreaker _breaker;
    private readonly ResilienceMetrics _metrics;
    private readonly ILogger _logger;
    private readonly ConditionalWeakTable<ResilienceOptions, ResiliencePipeline<AttemptResult>> _pipelines = new();

    public UpstreamRetryMiddleware(RequestDelegate next, TimeProvider time, DestinationCircuitBreaker breaker, ResilienceMetrics metrics,
        ILogger<UpstreamRetryMiddleware> logger)
    {
        _next = next;
        _time = time;
        _breaker = breaker;
        _metrics = metrics;
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var feature = context.Features.Get<RelayRequestFeature>();
        var proxy = context.Features.Get<IReverseProxyFeature>();
        if (feature is null || proxy is null)
        {
            return _next(context);
        }

        return InvokeCoreAsync(context, feature, proxy);
    }

    private async Task InvokeCoreAsync(HttpContext context, RelayRequestFeature feature, IReverseProxyFeature proxy)
    {
        var options = feature.Route.Resilience;
        var lifetime = feature.Lifetime;
        var attempts = new UpstreamAttemptsFeature { Options = options, RemainingBudget = () => Remaining(lifetime) };
        context.Features.Set(attempts);
        try
        {
            DestinationState? probe = null;
            if (proxy.AllDestinations.Count > 0 && CountOpen(proxy.AllDestinations) == proxy.AllDestinations.Count
                && (probe = _breaker.TryTakeProbe(proxy.AllDestinations)) is null)
            {
                attempts.Outcome = UpstreamOutcome.BreakerOpen;
                await WriteUnavailableAsync(context, proxy);
                return;
            }

            // A probe of an open destination is one attempt: it asks whether the upstream is back, nothing more.
            var state = new AttemptState(this, context, proxy, attempts, probe is null ? MaxAttempts(context, feature) : 1) { Probe = probe };
            var result = state.MaxAttempts == 1
                ? await AttemptAsync(state)
                : await Pipeline(options).ExecuteAsync(static (s, _) => s.Middleware.AttemptAsync(s), state, lifetime.Token);
            if (result.Kind == AttemptKind.NoDestination)
            {
                attempts.Outcome = UpstreamOutcome.BreakerOpen;
                ResetResponse(context);
                await WriteUnavailableAsync(context, proxy);
            }
            else
            {
                attempts.Outcome = result.Kind == AttemptKind.Unreachable ? UpstreamOutcome.Unreachable : UpstreamOutcome.Response;
            }
        }
        catch (OperationCanceledException) when (lifetime.Token.IsCancellationRequested && !context.Response.HasStarted)
        {
            // A timeout fired (or the client left) while waiting to retry: the held answer is dropped and Relay's step
            // answers for the lifetime's reason (504 first_token_timeout, ...).
            attempts.Outcome = UpstreamOutcome.Cancelled;
            ResetResponse(context);
            context.Features.Set<IForwarderErrorFeature>(new CancelledBetweenAttempts());
        }
        finally
        {
            _metrics.RecordAttempts(attempts, feature.RouteId);
        }
    }

    private async ValueTask<AttemptResult> AttemptAsync(AttemptState state)
    {
        var (context, proxy, attempts) = (state.Context, state.Proxy, state.Attempts);
        IReadOnlyList<DestinationState> candidates = state.Probe is { } probe ? [probe] : Candidates(state);
        if (candidates.Count == 0)
        {
            return new AttemptResult(AttemptKind.NoDestination, null);
        }

        if (attempts.Attempts > 0)
        {
            ResetResponse(context);
            context.Features.Set<IForwarderErrorFeature>(null);
            if (context.Request.Body.CanSeek)
            {
                context.Request.Body.Position = 0;
            }
        }

        attempts.Held = null;
        attempts.MayRetry = attempts.Attempts + 1 < state.MaxAttempts;
        attempts.BeginAttempt();
        proxy.AvailableDestinations = candidates;
        proxy.ProxiedDestination = null;
        await _next(context);

        var destination = proxy.ProxiedDestination;
        if (destination is not null)
        {
            attempts.SetDestination(destination.DestinationId);
            (state.Tried ??= []).Add(destination);
        }

        if (attempts.Held is { } held)
        {
            Log.RetryingStatus(_logger, attempts.Attempts, destination?.DestinationId, held.Status, held.RetryAfter?.TotalSeconds);
            return new AttemptResult(AttemptKind.Retry, RetryDelay(state) ?? held.RetryAfter);
        }

        if (context.Features.Get<IForwarderErrorFeature>() is { Error: ForwarderError.Request } error)
        {
            if (attempts.MayRetry && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested
                && RetryRules.ShouldRetryException(error.Exception, attempts.Options))
            {
                Log.RetryingTransport(_logger, attempts.Attempts, destination?.DestinationId, RetryRules.Classify(error.Exception));
                return new AttemptResult(AttemptKind.Retry, RetryDelay(state));
            }

            return new AttemptResult(AttemptKind.Unreachable, null);
        }

        return new AttemptResult(AttemptKind.Final, null);
    }

    /// <summary>Another destination not yet tried is tried at once; the same one again after Retry-After or the backoff.</summary>
    private static TimeSpan? RetryDelay(AttemptState state)
        => Candidates(state) is { Count: > 0 } next && state.Tried?.Contains(next[0]) != true ? TimeSpan.Zero : null;

    /// <summary>The destinations the next attempt may go to: not yet tried and not open; once all were tried, any not open.</summary>
    private static IReadOnlyList<DestinationState> Candidates(AttemptState state)
    {
        var all = state.Available;
        if (state.Tried is null && CountOpen(all) == 0)
        {
            // The first attempt with every breaker closed (the common case): YARP's own list, no copy.
            return all;
        }


        var untried = new List<DestinationState>(all.Count);
        var open = new List<DestinationState>(all.Count);
        foreach (var destination in all)
        {
            if (!DestinationCircuitBreaker.IsOpen(destination))
            {
                (state.Tried?.Contains(destination) == true ? open : untried).Add(destination);
            }
        }

        return untried.Count > 0 ? untried : open;
    }

    private static int CountOpen(IReadOnlyList<DestinationState> destinations)
    {
        var open = 0;
        for (var i = 0; i < destinations.Count; i++)
        {
            if (DestinationCircuitBreaker.IsOpen(destinations[i]))
            {
                open++;
            }
        }

        return open;
    }

    /// <summary>
    /// One attempt when the body cannot be replayed (a body Relay did not read and hold) or the response may start
    /// before the upstream answers (heartbeats before the first byte).
    /// </summary>
    private static int MaxAttempts(HttpContext context, RelayRequestFeature feature)
    {
        var hasBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true;
        var replayable = !hasBody || context.Request.Body.CanSeek;
        return replayable && feature.EarlyStart is null ? feature.Route.Resilience.MaxAttempts : 1;
    }

    private TimeSpan? Remaining(StreamLifetime lifetime)
    {
        var budget = lifetime.Timeouts.FirstToken;
        if (budget <= TimeSpan.Zero || budget == Timeout.InfiniteTimeSpan || lifetime.FirstByteAt != 0)
        {
            return null;
        }

        return budget - _time.GetElapsedTime(lifetime.StartedAt);
    }

    private static void ResetResponse(HttpContext context)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
        }
    }

    private async Task WriteUnavailableAsync(HttpContext context, IReverseProxyFeature proxy)
    {
        var retryAfter = _breaker.RetryAfter(proxy.AllDestinations);
        Log.AllBreakersOpen(_logger, proxy.Cluster.Config.ClusterId, retryAfter.TotalSeconds);
        // Set as the response starts: writing the error replaces the response's headers.
        context.Response.OnStarting(static state =>
        {
            var (response, seconds) = ((HttpResponse, int))state;
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        }, (context.Response, (int)retryAfter.TotalSeconds));
        await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status503ServiceUnavailable,
            "Every upstream of this route is failing; Relay calls them only about once a second until one answers again (circuit breaker open).",
            RelayErrorTypes.UpstreamError, "upstream_unavailable");
    }

    private ResiliencePipeline<AttemptResult> Pipeline(ResilienceOptions options)
        => _pipelines.GetValue(options, o => new ResiliencePipelineBuilder<AttemptResult> { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions<AttemptResult>
            {
                MaxRetryAttempts = o.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(o.BaseDelayMs),
                MaxDelay = TimeSpan.FromSeconds(Math.Max(1, o.MaxRetryAfterSeconds)),
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { Kind: AttemptKind.Retry }),
                // Null: the exponential backoff with jitter; otherwise Retry-After, or zero for a destination not yet tried.
                DelayGenerator = static args => ValueTask.FromResult(args.Outcome.Result.Delay),
            })
            .Build());

    private enum AttemptKind
    {
        /// <summary>An answer went to the client (or is going): done.</summary>
        Final,

        /// <summary>Nothing reached the client and the failure is retryable.</summary>
        Retry,

        /// <summary>The upstream could not be reached and no retry is left: Relay's step answers 502.</summary>
        Unreachable,

        /// <summary>Every destination's breaker opened during the attempts.</summary>
        NoDestination,
    }

    private readonly record struct AttemptResult(AttemptKind Kind, TimeSpan? Delay);

    private sealed class AttemptState(UpstreamRetryMiddleware middleware, HttpContext context, IReverseProxyFeature proxy, UpstreamAttemptsFeature attempts, int maxAttempts)
    {
        public UpstreamRetryMiddleware Middleware { get; } = middleware;

        public HttpContext Context { get; } = context;

        public IReverseProxyFeature Proxy { get; } = proxy;

        public UpstreamAttemptsFeature Attempts { get; } = attempts;

        public int MaxAttempts { get; } = maxAttempts;

        /// <summary>
        /// The destinations YARP made available for the request (healthy, per the cluster's policy); all of them while YARP
        /// catches up with a breaker that just closed (it updates the available list in the background).
        /// </summary>
        public IReadOnlyList<DestinationState> Available { get; } = proxy.AvailableDestinations.Count > 0 ? proxy.AvailableDestinations : proxy.AllDestinations;

        /// <summary>The destinations tried so far; null before the first attempt reached one.</summary>
        public HashSet<DestinationState>? Tried { get; set; }

        /// <summary>The open destination this request probes (every destination of the cluster is open); null otherwise.</summary>
        public DestinationState? Probe { get; init; }
    }

    /// <summary>The request ended while waiting between attempts; Relay's step answers for the lifetime's reason.</summary>
    private sealed class CancelledBetweenAttempts : IForwarderErrorFeature
    {
        public ForwarderError Error => ForwarderError.RequestCanceled;

        public Exception? Exception => null;
    }

    private static partial class Log
    {
        [LoggerMessage(1410, LogLevel.Information, "Upstream attempt {Attempt} to {DestinationId} answered {Status} (Retry-After {RetryAfterSeconds} s): retrying.", EventName = "RetryingStatus")]
        public static partial void RetryingStatus(ILogger logger, int attempt, string? destinationId, int status, double? retryAfterSeconds);

        [LoggerMessage(1411, LogLevel.Information, "Upstream attempt {Attempt} to {DestinationId} failed before the response ({Failure}): retrying.", EventName = "RetryingTransport")]
        public static partial void RetryingTransport(ILogger logger, int attempt, string? destinationId, TransportFailure failure);

        [LoggerMessage(1412, LogLevel.Warning, "Every destination of cluster {ClusterId} has its circuit breaker open: 503 upstream_unavailable, Retry-After {RetryAfterSeconds} s.", EventName = "AllBreakersOpen")]
        public static partial void AllBreakersOpen(ILogger logger, string clusterId, double retryAfterSeconds);
    }
}

namespace Relay.Middleware.Resilience;

/// <summary>
/// Retries before the first byte, failover across a cluster's destinations and a circuit breaker per destination
/// (every property can be overridden per route). The defaults are safe for POSTs that cost money: only failures
/// where the upstream provably did no work are retried (docs/operations.md, "Retries, failover and circuit breakers").
/// </summary>
public sealed class ResilienceOptions
{
    /// <summary>Upstream attempts per client request, the first included (1: no retries). Default 3.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>
    /// The longest <c>Retry-After</c> Relay waits for before a retry; an upstream that asks for longer gets its
    /// answer passed to the client at once. Default 10.
    /// </summary>
    public double MaxRetryAfterSeconds { get; set; } = 10;

    /// <summary>The first backoff delay when the upstream gave no <c>Retry-After</c> (doubling, with jitter). Default 200.</summary>
    public int BaseDelayMs { get; set; } = 200;

    /// <summary>
    /// Also retry failures after which the upstream may have done (billed) work: a connection reset after the
    /// request was sent, 502 and 504, and 429/503 without <c>Retry-After</c>. Default off.
    /// </summary>
    public bool RetryAmbiguousFailures { get; set; }

    /// <summary>
    /// Consecutive failures (unreachable, 502, 503, 504) after which a destination's breaker opens: it is skipped
    /// for <see cref="BreakSeconds"/>. 0 turns the breaker off. Default 5.
    /// </summary>
    public int BreakerFailures { get; set; } = 5;

    /// <summary>
    /// How long an open breaker skips its destination; then one request tries it again. While every destination of
    /// the cluster is open, one request a second probes one of them instead of waiting this out. Default 30.
    /// </summary>
    public double BreakSeconds { get; set; } = 30;
}

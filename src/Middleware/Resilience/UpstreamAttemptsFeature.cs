namespace Relay.Middleware.Resilience;

/// <summary>
/// The upstream attempts of one client request: how many were made, which destinations they went to, and how the
/// last one ended. Read by the <c>StreamEnded</c> record and the <c>relay.upstream.attempts</c> metric.
/// </summary>
internal sealed class UpstreamAttemptsFeature
{
    private readonly List<string> _destinations = [];

    /// <summary>Upstream attempts made so far (0 when every destination's breaker was open).</summary>
    public int Attempts => _destinations.Count;

    /// <summary>The destination id of each attempt, in order.</summary>
    public IReadOnlyList<string> Destinations => _destinations;

    /// <summary>How the attempts ended (see <see cref="UpstreamOutcome"/>).</summary>
    public string Outcome { get; internal set; } = UpstreamOutcome.Response;

    /// <summary>Set by the response transform when it held back a retryable answer: the attempt is retried.</summary>
    internal HeldResponse? Held { get; set; }

    /// <summary>Whether another attempt may still be made (set by the retry middleware before each attempt).</summary>
    internal bool MayRetry { get; set; }

    /// <summary>The request's resilience settings.</summary>
    internal ResilienceOptions Options { get; init; } = new();

    /// <summary>The first-token deadline's remaining time when the attempt started; null when it is off.</summary>
    internal Func<TimeSpan?> RemainingBudget { get; init; } = static () => null;

    /// <summary>Counts an attempt whose destination YARP has yet to choose.</summary>
    internal void BeginAttempt() => _destinations.Add("");

    /// <summary>Names the current attempt's destination.</summary>
    internal void SetDestination(string destinationId) => _destinations[^1] = destinationId;

    /// <summary>An upstream answer that was not passed on because it will be retried.</summary>
    internal readonly record struct HeldResponse(int Status, TimeSpan? RetryAfter);
}

namespace Relay.Middleware.Resilience;

/// <summary>How a request's upstream attempts ended (the <c>relay.upstream.outcome</c> tag and <see cref="UpstreamAttemptsFeature.Outcome"/>).</summary>
internal static class UpstreamOutcome
{
    /// <summary>An upstream answered and its answer went to the client (success or an error that is not retried).</summary>
    public const string Response = "response";

    /// <summary>No attempt reached an upstream.</summary>
    public const string Unreachable = "unreachable";

    /// <summary>Every destination's breaker was open: nothing was called.</summary>
    public const string BreakerOpen = "breaker_open";

    /// <summary>The client went away, or a timeout fired, between attempts.</summary>
    public const string Cancelled = "cancelled";
}

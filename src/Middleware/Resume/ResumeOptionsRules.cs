namespace Relay.Middleware.Resume;

/// <summary>
/// The rules for <see cref="ResumeOptions"/> values, for the <c>Relay</c> section and for a route's metadata alike, so a
/// bad value fails at start-up wherever it is set.
/// </summary>
internal static class ResumeOptionsRules
{
    /// <summary>What is wrong with <paramref name="options"/>, each a sentence naming its key under <paramref name="prefix"/> (<c>Relay:Resume:</c> or <c>Relay.Resume.</c>).</summary>
    public static IEnumerable<string> Problems(ResumeOptions options, string prefix)
    {
        if (options.DetachedSeconds < 0 || double.IsNaN(options.DetachedSeconds) || options.RetentionSeconds <= 0 || double.IsNaN(options.RetentionSeconds) || options.MaxEvents < 1)
        {
            yield return $"{prefix.TrimEnd(':', '.')}: DetachedSeconds must be zero or positive, RetentionSeconds positive and MaxEvents at least 1.";
        }

        var cap = options.MaxResponseSeconds;
        if (cap != 0 && !(cap >= ResponseCap.MinSeconds && double.IsFinite(cap)))
        {
            yield return $"{prefix}MaxResponseSeconds must be zero (off) or at least {ResponseCap.MinSeconds} (seconds, a few below the edge's cap on one response).";
        }
        else if (cap > 0 && !(options.DetachedSeconds >= ResponseCap.MinSeconds))
        {
            // Each capped response leaves the stream without a reader until its client reconnects.
            yield return $"{prefix}MaxResponseSeconds needs {prefix}DetachedSeconds of at least {ResponseCap.MinSeconds}: between two capped responses the stream has no reader until the client reconnects.";
        }
    }
}

namespace Relay.Middleware.Configuration;

/// <summary>Flush cadence defaults (product spec: "every ~20 ms or every 8 tokens, whichever comes first").</summary>
public sealed class CadenceOptions
{
    /// <summary>Whether content deltas are coalesced at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Flush after this many upstream tokens. 1 sends every token as it comes.</summary>
    public int MaxTokens { get; set; } = 8;

    /// <summary>Flush at the latest this many milliseconds after the first unflushed token.</summary>
    public int IntervalMs { get; set; } = 20;
}

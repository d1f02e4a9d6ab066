namespace Relay.LoadBench;

/// <summary>
/// One streaming scenario: <see cref="Streams"/> background streams from h2load (each of its clients runs
/// <see cref="RequestsPerClient"/> streams back to back, so the concurrency holds for the whole pass), plus
/// <see cref="Probes"/> probe streams from this process that time every event against <c>mock_emitted_us</c> and
/// check the content byte for byte. <see cref="WarmupPasses"/> passes of the same load run on the same target
/// process first; the measured pass comes after them.
/// </summary>
internal sealed record LoadScenario(string Name, int Streams, int TokensPerSecond, int ReplyTokens)
{
    public int RequestsPerClient { get; init; } = 2;

    public int WarmupPasses { get; init; } = 1;

    public int Probes { get; init; } = 6;

    /// <summary>A cadence scenario: its point is events per token and the latency cadence adds.</summary>
    public bool Cadence { get; init; }

    /// <summary>Time to first token MockInference waits before the first event.</summary>
    public int TtftMs { get; init; } = 50;

    /// <summary>New background connections per second (h2load <c>--rate</c>); 0: all at once.</summary>
    public int ConnectRate { get; init; }

    /// <summary>Tokens of one pass: background streams plus (roughly) the probes' streams.</summary>
    public long BackgroundTokens => (long)Streams * RequestsPerClient * ReplyTokens;

    public string Title => Cadence
        ? $"cadence at {TokensPerSecond:N0} tokens/s ({Streams:N0} background streams, {ReplyTokens}-token replies)"
        : $"{Streams:N0} streams at {TokensPerSecond:N0} tokens/s ({ReplyTokens}-token replies)";
}

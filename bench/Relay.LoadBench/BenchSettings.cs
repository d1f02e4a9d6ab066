namespace Relay.LoadBench;

/// <summary>
/// Scenario sizes of one benchmark run. The sizes (1,000-token replies, 10,000 idle streams) are scaled
/// where this 2-core machine or its limits cannot hold them inside the time budget; <see cref="Scaling"/> says how,
/// and the report prints it.
/// </summary>
internal sealed record BenchSettings
{
    public required string Mode { get; init; }

    /// <summary>Concurrent streams of the streaming scenarios.</summary>
    public required int[] Concurrency { get; init; }

    /// <summary>Runs of each streaming scenario; the report takes the median.</summary>
    public required int Runs { get; init; }

    public required int ReplyTokens { get; init; }

    public int TokensPerSecond { get; init; } = 20;

    /// <summary>Time to first token MockInference waits before the first event.</summary>
    public int TtftMs { get; init; } = 50;

    public required int IdleStreams { get; init; }

    public required int Cancellations { get; init; }

    public required int StalledStreams { get; init; }

    /// <summary>Cancellation storm: starts spread over this time; each aborts after 1 to this many content events.</summary>
    public double CancelRampSeconds { get; init; } = 2;

    public int AbortMaxEvents { get; init; } = 30;

    /// <summary>Memory scenarios: at least this many RSS samples, 250 ms apart, once the streams are open.</summary>
    public int MemorySamples { get; init; } = 12;

    /// <summary>Short streams over HTTP/1.1 (and a third of them over HTTP/2) before anything is measured.</summary>
    public int WarmupStreams { get; init; } = 300;

    public required string Scaling { get; init; }

    public static BenchSettings Quick { get; } = new()
    {
        Mode = "quick",
        Concurrency = [100, 500],
        Runs = 1,
        ReplyTokens = 20,
        IdleStreams = 500,
        Cancellations = 100,
        StalledStreams = 100,
        CancelRampSeconds = 1,
        AbortMaxEvents = 10,
        MemorySamples = 4,
        WarmupStreams = 100,
        Scaling = "Quick mode: 100 and 500 streams with 20-token replies, one run each; 500 idle streams; 100 cancellations; 100 stalled readers. A smoke run, not figures to quote.",
    };

    // Every stream scenario of the full run costs reply/20 s per run: 9 runs per target at 1,000 tokens would be
    // 7.5 minutes per target, so replies are 120 tokens (6 s). Per-event and per-token figures do not depend on
    // the reply length. Idle streams: the container's hard limit of 20,000 open files per process (it cannot be
    // raised here) must hold two sockets per stream in the proxy, so 9,000 instead of 10,000.
    public static BenchSettings Full { get; } = new()
    {
        Mode = "full",
        Concurrency = [100, 1000, 5000],
        Runs = 3,
        ReplyTokens = 120,
        IdleStreams = 9000,
        Cancellations = 1000,
        StalledStreams = 1000,
        Scaling = "Replies are 120 tokens instead of 1,000 (6 s per stream at 20 tokens/s) so that 3 runs of 3 sizes for 6 targets fit in 20 minutes; per-event and per-token figures do not depend on the reply length. The idle scenario holds 9,000 streams instead of 10,000: a proxy needs two sockets per stream and this container's hard open-file limit is 20,000 per process (not raisable here).",
    };
}

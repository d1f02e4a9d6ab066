namespace Relay.LoadBench;

/// <summary>
/// Scenario sizes of one benchmark run. The sizes (1,000-token replies, 10,000 idle streams) are scaled
/// where this 2-core machine or its limits cannot hold them inside the time budget; <see cref="Scaling"/> says how,
/// and the report prints it.
/// </summary>
internal sealed record BenchSettings
{
    public required string Mode { get; init; }

    /// <summary>The streaming scenarios, in order; each runs on every target.</summary>
    public required LoadScenario[] Scenarios { get; init; }

    /// <summary>Streams of the memory scenario's idle streams and of the cancellation storm run at this rate.</summary>
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
        Scenarios =
        [
            new("300x50", 300, 50, 40) { RequestsPerClient = 1, Probes = 4 },
            new("cadence-100", 30, 100, 60) { RequestsPerClient = 1, WarmupPasses = 0, Probes = 4, Cadence = true },
        ],
        IdleStreams = 0,
        Cancellations = 60,
        StalledStreams = 0,
        CancelRampSeconds = 0.5,
        AbortMaxEvents = 5,
        MemorySamples = 4,
        WarmupStreams = 30,
        Scaling = "Quick mode: 300 streams at 50 tokens/s with 40-token replies (one warm-up pass, one measured pass), cadence at 100 tokens/s, 60 cancellations; no memory scenarios and no plain YARP (they need fresh processes or another target: --full). A smoke run, not figures to quote.",
    };

    // Replies are short enough that every scenario fits the 20-minute budget for five targets; per-event and
    // per-token figures do not depend on the reply length. Idle streams: the container's hard limit of 20,000
    // open files per process must hold two sockets per stream in the proxy, so 9,000 instead of 10,000.
    public static BenchSettings Full { get; } = new()
    {
        Mode = "full",
        Scenarios =
        [
            new("300x50", 300, 50, 100) { RequestsPerClient = 3, WarmupPasses = 2, Probes = 8 },
            new("1000x20", 1000, 20, 60) { RequestsPerClient = 2, WarmupPasses = 1, Probes = 8, ConnectRate = 1000 },
            new("100x200", 100, 200, 400) { RequestsPerClient = 3, WarmupPasses = 1, Probes = 8 },
            new("cadence-50", 50, 50, 100) { RequestsPerClient = 2, WarmupPasses = 0, Probes = 8, Cadence = true },
            new("cadence-100", 50, 100, 200) { RequestsPerClient = 2, WarmupPasses = 0, Probes = 8, Cadence = true },
            new("cadence-1000", 50, 1000, 1000) { RequestsPerClient = 2, WarmupPasses = 0, Probes = 8, Cadence = true },
        ],
        IdleStreams = 9000,
        Cancellations = 1000,
        StalledStreams = 1000,
        Scaling = "Replies of 60 to 1,000 tokens (1 to 3 s per stream) so that every scenario fits 20 minutes for five targets; per-event and per-token figures do not depend on the reply length. The idle scenario holds 9,000 streams instead of 10,000: a proxy needs two sockets per stream and this container's hard open-file limit is 20,000 per process (not raisable here).",
    };
}

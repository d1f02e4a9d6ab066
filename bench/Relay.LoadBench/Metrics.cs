namespace Relay.LoadBench;

/// <summary>
/// The measured pass of one streaming scenario through one target. Latencies (microseconds) are the probes' own:
/// receive time minus the <c>mock_emitted_us</c> in the event (a coalesced event: its oldest token), and time to
/// first token from request start; each target's distribution stands on its own, direct's is printed beside it.
/// CPU: the proxy's process tree over the measured pass, which comes after <see cref="LoadScenario.WarmupPasses"/>
/// passes of the same load. <see cref="GeneratorCoreBusy"/>: how busy the generator's core was (every process on
/// it); over 0.8 the latency figures are marked invalid.
/// </summary>
internal sealed record LoadMetrics(
    string Target,
    string Scenario,
    int Streams,
    int TokensPerSecond,
    int ProbeEvents,
    double LatencyP50Us,
    double LatencyP90Us,
    double LatencyP99Us,
    double LatencyMaxUs,
    double TtftP50Us,
    double TtftP99Us,
    double EventsPerToken,
    double PassSeconds,
    long Tokens,
    double CpuSeconds,
    double CpuPerMillionTokens,
    double PeakRssMiB,
    double GeneratorCpuShare,
    double H2LoadCpuShare,
    double GeneratorCoreBusy,
    double ProxyCoreBusy,
    int Errors)
{
    /// <summary>When the last warm-up pass and the measured pass ran (local time: dotnet-counters' clock).</summary>
    public (DateTime Start, DateTime End)? WarmupWindow { get; init; }

    public (DateTime Start, DateTime End) Window { get; init; }

    /// <summary>Runtime counters over the last warm-up pass (null: none, or not a .NET target).</summary>
    public RuntimeCounters.Totals? WarmupCounters { get; init; }

    /// <summary>Runtime counters over the measured pass.</summary>
    public RuntimeCounters.Totals? Counters { get; init; }

    /// <summary>The target's state store (redis-server, for resumable streams) over the measured pass; null: none.</summary>
    public StateStoreMetrics? StateStore { get; init; }

    public bool LatencyValid => !(GeneratorCoreBusy > 0.8);

    public double AllocatedBytesPerToken => Counters is { } c && Tokens > 0 ? c.AllocatedBytes / Tokens : double.NaN;
}

/// <summary>
/// The state store's process (redis-server) over the measured pass: its CPU per million tokens (the same tokens as
/// the proxy's), its peak RSS, and Redis's <c>used_memory</c> right after the pass (what it holds: the events of every
/// stream still inside <c>Resume:RetentionSeconds</c>).
/// </summary>
internal sealed record StateStoreMetrics(double CpuSeconds, double CpuPerMillionTokens, double PeakRssMiB, double UsedMemoryMiB);

/// <summary>A cancellation storm: MockInference's observed abort time minus the client's abort time.</summary>
internal sealed record CancelMetrics(string Target, string Protocol, int Streams, int Measured, double P50Us, double P99Us, double MaxUs, int Errors);

/// <summary>Proxy memory with many open streams: idle (reading, nothing to read) or stalled (not reading).</summary>
internal sealed record MemoryMetrics(string Target, string Scenario, int Streams, int Opened, double BaselineMiB, double RssMiB, double KiBPerStream, int Errors);

/// <summary>Everything one benchmark run measured, serialised next to the report.</summary>
internal sealed class BenchResults
{
    public required string Mode { get; init; }

    public required string Date { get; init; }

    public required string Machine { get; init; }

    public required string Scaling { get; init; }

    public List<LoadMetrics> Loads { get; } = [];

    /// <summary>Each load scenario's description, for the report's headings.</summary>
    public Dictionary<string, string> ScenarioTitles { get; } = [];

    public List<CancelMetrics> Cancellations { get; } = [];

    public List<MemoryMetrics> Memory { get; } = [];

    /// <summary>Targets skipped, with the reason printed.</summary>
    public Dictionary<string, string> Skipped { get; } = [];

    public List<string> Targets { get; } = [];

    /// <summary>The first error messages of each target, for the report and the exit code.</summary>
    public List<string> Failures { get; } = [];

    /// <summary>Anomalies of the floor (direct) that do not fail the run; listed in the report.</summary>
    public List<string> Warnings { get; } = [];
}

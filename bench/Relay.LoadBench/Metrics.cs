namespace Relay.LoadBench;

/// <summary>
/// One run of a streaming scenario through one target. Latencies in microseconds. <see cref="GeneratorCoreShare"/>:
/// CPU of the load generator and MockInference over the run divided by its wall time (1.0 = their core was full,
/// and latencies include their queueing).
/// </summary>
internal sealed record StreamMetrics(
    string Target,
    int Streams,
    int Run,
    double LatencyP50Us,
    double LatencyP99Us,
    double LatencyMaxUs,
    double TtftP50Us,
    double CpuSeconds,
    long UpstreamTokens,
    double CpuPerMillionTokens,
    double PeakRssMiB,
    double PeakKiBPerStream,
    double SteadyKiBPerStream,
    double EventsPerToken,
    double BytesPerToken,
    int Errors,
    double GeneratorCoreShare);

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

    public List<StreamMetrics> Streams { get; } = [];

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

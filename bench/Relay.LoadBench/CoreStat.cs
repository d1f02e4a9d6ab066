using System.Globalization;

namespace Relay.LoadBench;

/// <summary>How busy one CPU core was, from the <c>cpuN</c> line of <c>/proc/stat</c> (every process on it, not only ours).</summary>
internal static class CoreStat
{
    public readonly record struct Sample(long Busy, long Total);

    public static Sample Read(int core)
    {
        var prefix = "cpu" + core.ToString(CultureInfo.InvariantCulture) + " ";
        var line = File.ReadLines("/proc/stat").First(l => l.StartsWith(prefix, StringComparison.Ordinal));
        // user nice system idle iowait irq softirq steal ...: idle and iowait are the idle time.
        var f = line[prefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        var total = f.Take(8).Sum();
        return new Sample(total - f[3] - f[4], total);
    }

    /// <summary>The share of the time between two samples that the core was busy.</summary>
    public static double Share(Sample start, Sample end) =>
        end.Total > start.Total ? (double)(end.Busy - start.Busy) / (end.Total - start.Total) : double.NaN;
}

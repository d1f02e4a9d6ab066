namespace Relay.LoadBench;

/// <summary>Percentiles (nearest rank) and medians.</summary>
internal static class Stats
{
    /// <summary>The nearest-rank percentile of <paramref name="sorted"/> (ascending); NaN when empty.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p / 100 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    /// <summary>The median of the values that are numbers; NaN when there are none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var list = values.Where(v => !double.IsNaN(v)).Order().ToList();
        if (list.Count == 0)
        {
            return double.NaN;
        }

        return list.Count % 2 == 1 ? list[list.Count / 2] : (list[(list.Count / 2) - 1] + list[list.Count / 2]) / 2;
    }
}

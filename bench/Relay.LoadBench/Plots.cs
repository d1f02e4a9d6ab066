using ScottPlot;

namespace Relay.LoadBench;

/// <summary>The report's PNG plots (ScottPlot).</summary>
internal static class Plots
{
    /// <summary>Each target's own event latency p50 and p99 (probes) per scenario, one line pair per target, direct included.</summary>
    public static void Latency(BenchResults r, string path)
    {
        var plot = new Plot();
        var sizes = r.Loads.Select(m => m.Scenario).Distinct().ToArray();
        var xs = Enumerable.Range(0, sizes.Length).Select(i => (double)i).ToArray();
        var palette = new ScottPlot.Palettes.Category10();
        var index = 0;
        foreach (var target in r.Targets)
        {
            var color = palette.GetColor(index++);
            var p99 = plot.Add.Scatter(xs, sizes.Select(s => Report.Figure(r, target, s, m => m.LatencyP99Us) / 1000).ToArray());
            p99.LegendText = target + " p99";
            p99.Color = color;
            var p50 = plot.Add.Scatter(xs, sizes.Select(s => Report.Figure(r, target, s, m => m.LatencyP50Us) / 1000).ToArray());
            p50.LegendText = target + " p50";
            p50.Color = color;
            p50.LinePattern = LinePattern.Dashed;
        }

        plot.Axes.Bottom.SetTicks(xs, sizes);
        plot.XLabel("scenario");
        plot.YLabel("event latency (receive minus mock_emitted_us), ms");
        plot.Title($"Event latency per target (probes), {r.Date} ({r.Mode})");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1000, 600);
    }

    /// <summary>CPU seconds per million upstream tokens, one bar group per target, one bar per scenario.</summary>
    public static void Cpu(BenchResults r, string path)
    {
        var plot = new Plot();
        var sizes = r.Loads.Select(m => m.Scenario).Distinct().ToArray();
        // A target's state store (redis-server for resumable streams) is a bar group of its own.
        var stores = r.Loads.Where(m => m.StateStore is not null).Select(m => m.Target).Distinct().ToArray();
        var targets = r.Targets.Where(t => t != "direct").SelectMany(t => stores.Contains(t) ? new[] { t, t + ": redis-server" } : [t]).ToArray();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        for (var t = 0; t < targets.Length; t++)
        {
            for (var s = 0; s < sizes.Length; s++)
            {
                var store = targets[t].EndsWith(": redis-server", StringComparison.Ordinal);
                var value = Report.Figure(r, store ? targets[t][..targets[t].IndexOf(':', StringComparison.Ordinal)] : targets[t], sizes[s],
                    m => store ? m.StateStore?.CpuPerMillionTokens ?? double.NaN : m.CpuPerMillionTokens);
                bars.Add(new Bar
                {
                    Position = t * (sizes.Length + 1) + s,
                    Value = double.IsNaN(value) ? 0 : value,
                    FillColor = palette.GetColor(s),
                });
            }
        }

        plot.Add.Bars(bars);
        plot.Axes.Bottom.SetTicks(
            targets.Select((_, t) => t * (sizes.Length + 1) + (sizes.Length - 1) / 2.0).ToArray(),
            targets);
        for (var s = 0; s < sizes.Length; s++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = sizes[s], FillColor = palette.GetColor(s) });
        }

        plot.YLabel("CPU seconds per million upstream tokens");
        plot.Title($"Proxy CPU per million tokens, {r.Date} ({r.Mode})");
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 1000, 600);
    }
}

using System.Diagnostics;
using System.Globalization;

namespace Relay.LoadBench;

/// <summary>
/// The .NET runtime's counters of a target process (the <c>System.Runtime</c> meter), recorded once a second by
/// <c>dotnet-counters collect</c> (a dotnet tool; absent: no counters, and the report says so) for the process's
/// lifetime. <see cref="Window"/> sums the per-second rates over a pass: JIT time, GC pauses and collections,
/// bytes allocated, thread-pool work items. This is how the report shows that the JIT and the GC had settled before the
/// measured pass.
/// </summary>
internal sealed class RuntimeCounters : IAsyncDisposable
{
    private static readonly string? s_tool = new[]
    {
        Path.Combine(Environment.GetEnvironmentVariable("HOME") ?? "/root", ".dotnet", "tools", "dotnet-counters"),
        "/usr/local/bin/dotnet-counters",
    }.FirstOrDefault(File.Exists);

    private readonly Process _process;
    private readonly string _csv;

    private RuntimeCounters(Process process, string csv)
    {
        _process = process;
        _csv = csv;
    }

    public static bool Available => s_tool is not null;

    /// <summary>Runtime counters summed over one pass (rates × 1 s intervals).</summary>
    public sealed record Totals(double JitSeconds, double JitMethods, double GcPauseSeconds, double Gen0, double Gen1, double Gen2, double AllocatedBytes, double ThreadPoolWorkItems, int Seconds);

    public static RuntimeCounters? Start(int pid, string workDir)
    {
        if (s_tool is null)
        {
            return null;
        }

        var csv = Path.Combine(workDir, $"counters-{pid}.csv");
        var info = new ProcessStartInfo(s_tool)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var arg in new[] { "collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "--counters", "System.Runtime", "--format", "csv", "-o", csv, "--refresh-interval", "1" })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info);
        if (process is null)
        {
            return null;
        }

        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new RuntimeCounters(process, csv);
    }

    /// <summary>The counters' sums over [<paramref name="start"/>, <paramref name="end"/>) (local time, whole seconds).</summary>
    public Totals? Window(DateTime start, DateTime end)
    {
        string[] lines;
        try
        {
            using var stream = new FileStream(_csv, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            lines = reader.ReadToEnd().Split('\n');
        }
        catch (IOException)
        {
            return null;
        }

        double jit = 0, methods = 0, pause = 0, gen0 = 0, gen1 = 0, gen2 = 0, allocated = 0, queue = 0;
        var seconds = new HashSet<DateTime>();
        foreach (var line in lines.Skip(1))
        {
            // Timestamp,Provider,Counter Name,Counter Type,Mean/Increment (the name has no commas).
            var f = line.Split(',');
            if (f.Length < 5 || !DateTime.TryParse(f[0], CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
                || at < start.AddMilliseconds(-start.Millisecond) || at >= end
                || !double.TryParse(f[4], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                continue;
            }

            seconds.Add(at);
            var name = f[2];
            if (name.StartsWith("dotnet.jit.compilation.time", StringComparison.Ordinal)) { jit += value; }
            else if (name.StartsWith("dotnet.jit.compiled_methods", StringComparison.Ordinal)) { methods += value; }
            else if (name.StartsWith("dotnet.gc.pause.time", StringComparison.Ordinal)) { pause += value; }
            else if (name.EndsWith("[gc.heap.generation=gen0]", StringComparison.Ordinal) && name.StartsWith("dotnet.gc.collections", StringComparison.Ordinal)) { gen0 += value; }
            else if (name.EndsWith("[gc.heap.generation=gen1]", StringComparison.Ordinal) && name.StartsWith("dotnet.gc.collections", StringComparison.Ordinal)) { gen1 += value; }
            else if (name.EndsWith("[gc.heap.generation=gen2]", StringComparison.Ordinal) && name.StartsWith("dotnet.gc.collections", StringComparison.Ordinal)) { gen2 += value; }
            else if (name.StartsWith("dotnet.gc.heap.total_allocated", StringComparison.Ordinal)) { allocated += value; }
            else if (name.StartsWith("dotnet.thread_pool.work_item.count", StringComparison.Ordinal)) { queue += value; }
        }

        return seconds.Count == 0 ? null : new Totals(jit, methods, pause, gen0, gen1, gen2, allocated, queue, seconds.Count);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // 'q' ends a collect session cleanly (the CSV is complete); the target's exit ends it too.
            try
            {
                await _process.StandardInput.WriteAsync('q');
                await _process.StandardInput.FlushAsync();
            }
            catch (IOException)
            {
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
            }
        }

        _process.Dispose();
    }
}

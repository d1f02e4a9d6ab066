using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Relay.LoadBench;

/// <summary>
/// The background load: h2load (nghttp2, C, one thread, event loop) on the load generator's core, so that the
/// generator costs a small share of its core and latency figures measure the target, not the client.
/// </summary>
internal static partial class H2Load
{
    public static readonly string? Binary = new[] { "/usr/bin/h2load", "/usr/local/bin/h2load" }.FirstOrDefault(File.Exists);

    /// <summary>What h2load reported; <see cref="Problem"/> is null when every request succeeded with a 2xx.</summary>
    public sealed record Result(int Requests, int Succeeded, int Status2xx, long DataBytes, double Seconds, string? Problem, double CpuSeconds);

    public static async Task<Result> RunAsync(string url, bool http2, int clients, int requestsPerClient, int connectRate, string bodyPath, IReadOnlyDictionary<string, string> headers, string workDir)
    {
        var requests = clients * requestsPerClient;
        var info = new ProcessStartInfo(Binary ?? throw new InvalidOperationException("h2load is not installed"))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workDir,
        };
        // -m 1: one stream per HTTP/2 connection, as each HTTP/1.1 client has one connection: the same
        // concurrency either way. The process inherits this process's affinity (the generator's core).
        string[] args = [http2 ? "--no-tls-proto=h2c" : "--h1", "-c", $"{clients}", "-n", $"{requests}", "-m", "1", "-t", "1", "-d", bodyPath];
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        if (connectRate > 0)
        {
            info.ArgumentList.Add("-r");
            info.ArgumentList.Add(connectRate.ToString(CultureInfo.InvariantCulture));
        }

        foreach (var (name, value) in headers)
        {
            info.ArgumentList.Add("-H");
            info.ArgumentList.Add($"{name}: {value}");
        }

        info.ArgumentList.Add(url);
        var stopwatch = Stopwatch.StartNew();
        // Its CPU time: what this process's reaped children used (/proc/self/stat cutime + cstime), before and after.
        var childrenBefore = ProcStat.ReapedChildrenCpuSeconds();
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start h2load");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var cpu = ProcStat.ReapedChildrenCpuSeconds() - childrenBefore;
        var seconds = stopwatch.Elapsed.TotalSeconds;
        var output = await stdout + await stderr;
        File.WriteAllText(Path.Combine(workDir, $"h2load-{DateTime.Now:HHmmss-fff}.log"), output);
        var summary = RequestsLine().Match(output);
        var status = StatusLine().Match(output);
        var traffic = TrafficLine().Match(output);
        if (!summary.Success || !status.Success || !traffic.Success)
        {
            return new Result(requests, 0, 0, 0, seconds, $"h2load exited {process.ExitCode} without its summary: {Tail(output)}", cpu);
        }

        var succeeded = int.Parse(summary.Groups["succeeded"].Value, CultureInfo.InvariantCulture);
        var ok = int.Parse(status.Groups["ok"].Value, CultureInfo.InvariantCulture);
        var data = long.Parse(traffic.Groups["data"].Value, CultureInfo.InvariantCulture);
        var problem = succeeded != requests || ok != requests
            ? $"h2load: {succeeded} of {requests} requests succeeded, {ok} with a 2xx ({summary.Value.Trim()}; {status.Value.Trim()})"
            : null;
        return new Result(requests, succeeded, ok, data, seconds, problem, cpu);
    }

    private static string Tail(string text) => text.Length > 400 ? text[^400..] : text;

    [GeneratedRegex(@"requests: (?<total>\d+) total, \d+ started, \d+ done, (?<succeeded>\d+) succeeded.*")]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"status codes: (?<ok>\d+) 2xx.*")]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"traffic: .*? total, .*? headers .*?, .*?\((?<data>\d+)\) data")]
    private static partial Regex TrafficLine();
}

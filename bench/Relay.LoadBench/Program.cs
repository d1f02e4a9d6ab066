using System.Diagnostics;
using System.Globalization;
using Relay.LoadBench;

// The side-by-side load benchmark (issues 7 and 12; cancellation and stalled-reader memory of issue 4). Started by
// bench/run.sh, which builds everything in Release and pins this process to core 1:
//   Relay.LoadBench --quick | --full [--targets a,b,...] [--scenarios 300x50,cancel,idle,stalled,...]
//                   [--relay-variants "name:VAR=value VAR2=value;name2:..."] [--no-report]
// Exit code 1 when any target produced errors or wrong content.
var settings = args.Contains("--full") ? BenchSettings.Full : BenchSettings.Quick;
var only = ArgValue("--targets")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
var scenarioFilter = ArgValue("--scenarios")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
bool Runs(string scenario) => scenarioFilter is null || scenarioFilter.Contains(scenario);
settings = settings with { Scenarios = [.. settings.Scenarios.Where(s => Runs(s.Name))] };
var variants = RelayTarget.Variants(ArgValue("--relay-variants"));
if (H2Load.Binary is null)
{
    Console.Error.WriteLine("h2load is not installed (Debian: apt-get install nghttp2-client; bench/setup.sh installs it)");
    return 2;
}
var writeReport = !args.Contains("--no-report");
var repoRoot = FindRepoRoot();
var date = DateTime.Now.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
var workDir = Path.Combine(repoRoot, "bench", "results", "tmp", DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
Directory.CreateDirectory(workDir);

var stopwatch = Stopwatch.StartNew();
Console.WriteLine($"Relay load benchmark, {settings.Mode} mode. {settings.Scaling}");
Console.WriteLine($"Load generator and MockInference on core 1 (affinity {AffinityOf(Environment.ProcessId)}), each proxy on core {Target.ProxyCore}.");

// MockInference: its own process on the load generator's core, h1 and prior-knowledge h2 endpoints.
var (mockPort, mockH2Port) = (TargetProcess.FreePort(), TargetProcess.FreePort());
var mockDll = Path.Combine(repoRoot, "src", "MockInference", "bin", "Release", "net10.0", "MockInference.dll");
await using var mock = TargetProcess.Start("mockinference", 1, workDir, "dotnet",
[
    mockDll,
    "--Kestrel:Endpoints:h1:Url", $"http://127.0.0.1:{mockPort}",
    "--Kestrel:Endpoints:h2:Url", $"http://127.0.0.1:{mockH2Port}",
    "--Kestrel:Endpoints:h2:Protocols", "Http2",
    "--Logging:LogLevel:Default", "Warning",
]);
await mock.WaitListeningAsync([mockPort, mockH2Port], TimeSpan.FromSeconds(30));
DirectTarget.H2Url = $"http://127.0.0.1:{mockH2Port}";
var paths = new BenchPaths(repoRoot, workDir, $"http://127.0.0.1:{mockPort}", mock.Pid);

var results = new BenchResults
{
    Mode = settings.Mode,
    Date = date,
    Machine = $"{File.ReadLines("/proc/cpuinfo").Count(l => l.StartsWith("processor", StringComparison.Ordinal))} cores ({CpuModel()}), .NET {Environment.Version}, shared with other builds",
    Scaling = settings.Scaling,
};
foreach (var scenario in settings.Scenarios)
{
    results.ScenarioTitles[scenario.Name] = scenario.Title;
}

var runner = new Runner(settings, paths, results);
await runner.LoadExpectedAsync(Target.All[0]);

Console.WriteLine(RuntimeCounters.Available ? "Runtime counters: dotnet-counters." : "Runtime counters: dotnet-counters not found (dotnet tool install -g dotnet-counters); JIT/GC settling is not reported.");
var targets = Target.All.Concat(variants).Where(t => only is null ? (settings.Mode == "quick" ? t.Quick : t.Default) : only.Contains(t.Name) || t is DirectTarget || variants.Contains(t));
foreach (var target in targets)
{
    if (target.Unavailable(paths) is { } reason)
    {
        Console.WriteLine($"SKIP {target.Name}: {reason}");
        results.Skipped[target.Name] = reason;
        continue;
    }

    Console.WriteLine($"== {target.Name} ({stopwatch.Elapsed:mm\\:ss})");
    var failuresBefore = results.Failures.Count;
    RunningTarget started;
    try
    {
        started = await target.StartAsync(paths);
    }
    catch (InvalidOperationException ex)
    {
        results.Failures.Add($"{target.Name}: could not start: {ex.Message}");
        Console.Error.WriteLine($"FAIL {target.Name}: could not start: {ex.Message}");
        continue;
    }

    await using (var running = started)
    {
        if (await runner.ProbeAndWarmAsync(target, running) is { } problem)
        {
            if (target.Optional)
            {
                var logged = File.Exists(running.Process?.LogPath) ? File.ReadLines(running.Process.LogPath).FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)) : null;
                var skip = $"its probe stream failed: {problem}" + (logged is null ? "" : $" (its log: {logged.Trim()})");
                Console.WriteLine($"SKIP {target.Name}: {skip}");
                results.Skipped[target.Name] = skip;
                continue;
            }

            results.Failures.Add($"{target.Name}: probe: {problem}");
            Console.Error.WriteLine($"FAIL {target.Name}: probe: {problem}");
            continue;
        }

        results.Targets.Add(target.Name);
        var counters = running.Process is { } p && target.IsDotnet ? RuntimeCounters.Start(p.Pid, paths.WorkDir) : null;
        var firstLoad = results.Loads.Count;
        foreach (var scenario in settings.Scenarios)
        {
            await runner.RunLoadAsync(target, running, scenario);
        }

        if (counters is not null)
        {
            // dotnet-counters writes its CSV as it goes, buffered: read it once the session has ended.
            await counters.DisposeAsync();
            for (var i = firstLoad; i < results.Loads.Count; i++)
            {
                var load = results.Loads[i];
                results.Loads[i] = load with
                {
                    WarmupCounters = load.WarmupWindow is { } w ? counters.Window(w.Start, w.End) : null,
                    Counters = counters.Window(load.Window.Start, load.Window.End),
                };
            }
        }

        foreach (var m in results.Loads.Skip(firstLoad))
        {
            Console.WriteLine($"   {m.Scenario,-12} probes p50 {m.LatencyP50Us / 1000:F2} ms, p99 {m.LatencyP99Us / 1000:F2} ms, TTFT p50 {m.TtftP50Us / 1000:F1} ms, CPU {m.CpuPerMillionTokens:F1} s/M tokens, {m.EventsPerToken:F3} events/token, JIT {m.WarmupCounters?.JitMethods:F0} → {m.Counters?.JitMethods:F0} methods ({m.WarmupCounters?.JitSeconds:F2} → {m.Counters?.JitSeconds:F2} s wall), GC pauses {m.Counters?.GcPauseSeconds * 1000:F0} ms in {m.Counters?.Gen0 + m.Counters?.Gen1 + m.Counters?.Gen2:F0} GCs, {m.AllocatedBytesPerToken:F0} B allocated/token, peak RSS {m.PeakRssMiB:F0} MiB, generator core {m.GeneratorCoreBusy:P0} busy (ours {m.GeneratorCpuShare:P0}, h2load {m.H2LoadCpuShare:P0}){(m.LatencyValid ? "" : " INVALID latency")}, errors {m.Errors}");
            if (m.StateStore is { } redis)
            {
                Console.WriteLine($"   {"",-12} redis-server: CPU {redis.CpuPerMillionTokens:F1} s/M tokens, peak RSS {redis.PeakRssMiB:F0} MiB, used_memory {redis.UsedMemoryMiB:F1} MiB after the pass");
            }
        }

        if (Runs("cancel") && target.NotMeasured("cancel") is { } noCancel)
        {
            Console.WriteLine($"   cancellation: not measured ({noCancel})");
        }
        else if (Runs("cancel"))
        {
            await runner.RunCancellationsAsync(target, running.H1Url, http2: false);
            if (running.H2Url is not null)
            {
                await runner.RunCancellationsAsync(target, running.H2Url, http2: true);
            }
        }

        foreach (var c in results.Cancellations.Where(c => c.Target == target.Name))
        {
            Console.WriteLine($"   cancellation {c.Protocol}: p50 {c.P50Us / 1000:F2} ms, p99 {c.P99Us / 1000:F2} ms ({c.Measured}/{c.Streams}), errors {c.Errors}");
        }
    }

    if (target is not DirectTarget)
    {
        // Memory scenarios in fresh processes, so that earlier scenarios' heap does not hide the growth.
        foreach (var (behaviour, streams) in new[] { (Behaviour.HoldOpen, settings.IdleStreams), (Behaviour.StopReading, settings.StalledStreams) })
        {
            var memoryScenario = behaviour == Behaviour.HoldOpen ? "idle" : "stalled";
            if (streams == 0 || !Runs(memoryScenario))
            {
                continue;
            }

            if (target.NotMeasured(memoryScenario) is { } noMemory)
            {
                Console.WriteLine($"   {memoryScenario}: not measured ({noMemory})");
                continue;
            }

            await using var fresh = await target.StartAsync(paths);
            await runner.ProbeAndWarmAsync(target, fresh);
            await runner.RunMemoryAsync(target, fresh, behaviour, streams);
            var m = results.Memory[^1];
            Console.WriteLine($"   {m.Scenario} {m.Opened}/{m.Streams} streams: {m.RssMiB:F1} MiB, {m.KiBPerStream:F1} KiB/stream, errors {m.Errors}");
        }
    }

    foreach (var failure in results.Failures.Skip(failuresBefore))
    {
        Console.Error.WriteLine($"FAIL {failure}");
    }
}

foreach (var resume in results.Loads.Where(m => m.StateStore is not null))
{
    Console.WriteLine($"Resume on vs off, {resume.Scenario}: {Report.ResumeFigures(results, resume)}");
}

if (writeReport)
{
    var written = Report.Write(results, repoRoot);
    Console.WriteLine($"Results: {string.Join(", ", written)}");
}

Console.WriteLine($"Done in {stopwatch.Elapsed:mm\\:ss}.");
if (results.Failures.Count > 0)
{
    Console.Error.WriteLine($"FAILED: {results.Failures.Count} problem(s); the figures of a target with errors are not valid.");
    return 1;
}

return 0;

string? ArgValue(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "Relay.sln")))
        {
            return dir.FullName;
        }
    }

    throw new InvalidOperationException("Relay.sln not found above " + AppContext.BaseDirectory);
}

static string AffinityOf(int pid)
{
    var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
    return line?.Split(':')[1].Trim() ?? "?";
}

static string CpuModel()
{
    var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
    return line?.Split(':')[1].Trim() ?? "unknown CPU";
}

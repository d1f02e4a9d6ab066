using System.Net.Http.Json;
using MockInference;

namespace Relay.LoadBench;

/// <summary>Runs every scenario against one started target and records what it measured.</summary>
internal sealed class Runner(BenchSettings settings, BenchPaths paths, BenchResults results)
{
    /// <summary>Seeds of the replies; each stream takes one, so clients do not all receive the same text.</summary>
    private static readonly int[] s_seeds = [101, 102, 103, 104, 105, 106, 107, 108];

    private readonly Dictionary<(int Seed, int MaxTokens), (byte[] Utf8, int Tokens)> _expected = [];
    private readonly HttpClient _mock = new() { BaseAddress = new Uri(paths.MockUrl) };

    /// <summary>
    /// What MockInference generates for each seed, fetched straight from it as fast as it can write: the text every
    /// client of every target must receive, byte for byte.
    /// </summary>
    public async Task LoadExpectedAsync(Target direct)
    {
        using var client = new StreamClient(direct, paths.MockUrl, http2: false);
        foreach (var maxTokens in settings.Scenarios.Select(s => s.ReplyTokens).Append(ProbeTokens).Distinct())
        {
            foreach (var seed in s_seeds)
            {
                var result = await client.RunAsync(new StreamSpec(seed, maxTokens, 0, 0, Behaviour.ReadAll), null, CancellationToken.None);
                if (result.Error is not null || result.CompletionTokens is not int tokens)
                {
                    throw new InvalidOperationException($"MockInference did not stream seed {seed}: {result.Error ?? "no usage"}");
                }

                _expected[(seed, maxTokens)] = (result.Content.WrittenSpan.ToArray(), tokens);
            }
        }
    }

    private const int ProbeTokens = 50;

    /// <summary>One stream and its content check; returns the problem, or null. Also warms the target up.</summary>
    public async Task<string?> ProbeAndWarmAsync(Target target, RunningTarget running)
    {
        using var client = new StreamClient(target, running.H1Url, http2: false);
        var probe = await client.RunAsync(new StreamSpec(s_seeds[0], ProbeTokens, 0, 0, Behaviour.ReadAll), null, CancellationToken.None);
        var problem = Check(probe, s_seeds[0], ProbeTokens);
        if (problem is not null)
        {
            return problem;
        }

        if (probe.RequestId is null)
        {
            return "the response lacks MockInference's x-mock-request-id header";
        }

        // JIT and connection pools: a few hundred short streams over both protocols before anything is measured.
        var problems = await WarmAsync(client, settings.WarmupStreams);
        if (running.H2Url is not null)
        {
            using var h2 = new StreamClient(target, running.H2Url, http2: true);
            problems = [.. problems, .. await WarmAsync(h2, settings.WarmupStreams / 3)];
        }

        return problems.FirstOrDefault(p => p is not null);
    }

    private async Task<string?[]> WarmAsync(StreamClient client, int streams)
    {
        var results = await Task.WhenAll(Enumerable.Range(0, streams).Select(i => client.RunAsync(
            new StreamSpec(Seed(i), ProbeTokens, 200, 0, Behaviour.ReadAll) { StartDelay = TimeSpan.FromMilliseconds(i) }, null, CancellationToken.None)));
        return [.. results.Select((r, i) => Check(r, Seed(i), ProbeTokens))];
    }

    /// <summary>
    /// One streaming scenario on a started target: its warm-up passes, then the measured pass. Each pass is h2load's
    /// background streams plus <see cref="LoadScenario.Probes"/> probe loops, each running one checked stream after
    /// another until h2load is done.
    /// </summary>
    public async Task RunLoadAsync(Target target, RunningTarget running, LoadScenario scenario)
    {
        var bodyPath = Path.Combine(paths.WorkDir, $"body-{target.Name}-{scenario.Name}.json");
        await File.WriteAllBytesAsync(bodyPath, StreamClient.Body(target, s_seeds[0], scenario.ReplyTokens));
        var headers = new Dictionary<string, string>(target.Headers)
        {
            ["content-type"] = "application/json",
            ["x-mock-tokens-per-second"] = scenario.TokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["x-mock-ttft-ms"] = scenario.TtftMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["x-mock-seed"] = s_seeds[0].ToString(System.Globalization.CultureInfo.InvariantCulture),
        };

        (DateTime, DateTime)? warmupWindow = null;
        for (var pass = 0; pass < scenario.WarmupPasses; pass++)
        {
            var warm = await PassAsync(target, running, scenario, bodyPath, headers);
            warmupWindow = (warm.Start, warm.End);
            if (warm.Problems.Count > 0)
            {
                foreach (var problem in warm.Problems)
                {
                    Fail(target, $"{scenario.Name} warm-up: {problem}");
                }

                return;
            }
        }

        var p = await PassAsync(target, running, scenario, bodyPath, headers);
        foreach (var problem in p.Problems)
        {
            Fail(target, $"{scenario.Name}: {problem}");
        }

        var latencies = p.Probes.SelectMany(r => r.LatenciesUs).Select(l => (double)l).Order().ToList();
        var ttft = p.Probes.Select(r => (double)(r.FirstContentUs - r.RequestStartUs)).Order().ToList();
        var probeTokens = p.Probes.Sum(r => (long)_expected[(r.Seed, scenario.ReplyTokens)].Tokens);
        var measured = p.ProxyCpuSeconds;
        results.Loads.Add(new LoadMetrics(
            target.Name, scenario.Name, scenario.Streams, scenario.TokensPerSecond,
            latencies.Count,
            Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 90), Stats.Percentile(latencies, 99), latencies.Count > 0 ? latencies[^1] : double.NaN,
            Stats.Percentile(ttft, 50), Stats.Percentile(ttft, 99),
            probeTokens > 0 ? (double)p.Probes.Sum(r => r.Result.ContentEvents) / probeTokens : double.NaN,
            p.Seconds,
            p.Tokens,
            measured,
            p.Tokens > 0 && !double.IsNaN(measured) ? measured / p.Tokens * 1_000_000 : double.NaN,
            p.PeakRssMiB,
            p.GeneratorCpuShare,
            p.H2LoadCpuShare,
            p.GeneratorCoreBusy,
            p.ProxyCoreBusy,
            p.Problems.Count)
        {
            WarmupWindow = warmupWindow,
            Window = (p.Start, p.End),
            StateStore = p.StateStore,
        });
    }

    /// <summary>What one pass measured.</summary>
    private sealed record Pass(
        DateTime Start, DateTime End, double Seconds, long Tokens, double ProxyCpuSeconds, double PeakRssMiB,
        double GeneratorCpuShare, double H2LoadCpuShare, double GeneratorCoreBusy, double ProxyCoreBusy,
        List<Probe> Probes, List<string> Problems)
    {
        public StateStoreMetrics? StateStore { get; init; }
    }

    private sealed record Probe(int Seed, StreamResult Result)
    {
        public List<int> LatenciesUs => Result.LatenciesUs;

        public long FirstContentUs => Result.FirstContentUs;

        public long RequestStartUs => Result.RequestStartUs;
    }

    private async Task<Pass> PassAsync(Target target, RunningTarget running, LoadScenario scenario, string bodyPath, IReadOnlyDictionary<string, string> headers)
    {
        var pids = running.Process is { } process ? ProcStat.Tree(process.Pid) : [];
        int[] generator = [Environment.ProcessId, paths.MockPid];
        var generatorCore = CoreStat.Read(GeneratorCore);
        var proxyCore = CoreStat.Read(Target.ProxyCore);
        var generatorStart = ProcStat.Read(generator);
        var proxyStart = pids.Length > 0 ? ProcStat.Read(pids) : default;
        int[] store = running.StateStore is { } redis ? [redis.Process.Pid] : [];
        var storeStart = store.Length > 0 ? ProcStat.Read(store) : default;
        var start = DateTime.Now;
        var wall = System.Diagnostics.Stopwatch.StartNew();
        long peakRss = 0;
        long storePeakRss = 0;
        using var stopSampling = new CancellationTokenSource();
        var sampler = pids.Length == 0 ? Task.CompletedTask : Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                peakRss = Math.Max(peakRss, ProcStat.Read(pids).RssBytes);
                storePeakRss = store.Length > 0 ? Math.Max(storePeakRss, ProcStat.Read(store).RssBytes) : 0;
                await Task.Delay(200, CancellationToken.None);
            }
        });

        var background = H2Load.RunAsync($"{running.H1Url}/v1/chat/completions", http2: false, scenario.Streams, scenario.RequestsPerClient,
            scenario.ConnectRate, bodyPath, headers, paths.WorkDir);
        using var client = new StreamClient(target, running.H1Url, http2: false);
        var probes = new List<Probe>();
        var period = TimeSpan.FromMilliseconds(1000.0 / scenario.TokensPerSecond);
        var loops = Enumerable.Range(0, scenario.Probes).Select(async loop =>
        {
            // Spread over one token period, so that the probes do not sample one phase of the mock's schedule.
            var delay = period * loop / scenario.Probes;
            for (var i = 0; !background.IsCompleted; i++)
            {
                var seed = s_seeds[(loop + i) % s_seeds.Length];
                var result = await client.RunAsync(new StreamSpec(seed, scenario.ReplyTokens, scenario.TokensPerSecond, scenario.TtftMs, Behaviour.ReadAll) { StartDelay = delay }, null, CancellationToken.None);
                delay = TimeSpan.Zero;
                lock (probes)
                {
                    probes.Add(new Probe(seed, result));
                }
            }
        }).ToArray();

        var h2load = await background;
        await Task.WhenAll(loops);
        var seconds = wall.Elapsed.TotalSeconds;
        var proxyEnd = pids.Length > 0 ? ProcStat.Read(pids) : default;
        var storeEnd = store.Length > 0 ? ProcStat.Read(store) : default;
        var generatorEnd = ProcStat.Read(generator);
        var generatorBusy = CoreStat.Share(generatorCore, CoreStat.Read(GeneratorCore));
        var proxyBusy = CoreStat.Share(proxyCore, CoreStat.Read(Target.ProxyCore));
        var end = DateTime.Now;
        await stopSampling.CancelAsync();
        await sampler;

        var problems = new List<string>();
        if (h2load.Problem is not null)
        {
            problems.Add(h2load.Problem);
        }

        // h2load does not parse the body: every background stream must at least carry the text's bytes (a cut
        // stream carries fewer); the probes check theirs byte for byte.
        var expected = _expected[(s_seeds[0], scenario.ReplyTokens)];
        if (h2load.Succeeded > 0 && h2load.DataBytes / h2load.Succeeded < expected.Utf8.Length)
        {
            problems.Add($"h2load received {h2load.DataBytes / h2load.Succeeded} bytes per stream, fewer than the {expected.Utf8.Length} bytes of the reply's text");
        }

        foreach (var probe in probes)
        {
            if (Check(probe.Result, probe.Seed, scenario.ReplyTokens) is { } problem)
            {
                problems.Add("probe: " + problem);
            }
        }

        if (probes.Count == 0)
        {
            problems.Add("no probe stream ran");
        }

        var tokens = (long)h2load.Succeeded * expected.Tokens + probes.Sum(p => (long)_expected[(p.Seed, scenario.ReplyTokens)].Tokens);
        return new Pass(start, end, seconds, tokens,
            pids.Length > 0 ? proxyEnd.CpuSeconds - proxyStart.CpuSeconds : double.NaN,
            pids.Length > 0 ? peakRss / 1048576.0 : double.NaN,
            (generatorEnd.CpuSeconds - generatorStart.CpuSeconds + h2load.CpuSeconds) / seconds,
            h2load.CpuSeconds / seconds,
            generatorBusy, proxyBusy, probes, [.. problems.Distinct().Take(5)])
        {
            StateStore = running.StateStore is { } stateStore
                ? new StateStoreMetrics(storeEnd.CpuSeconds - storeStart.CpuSeconds, (storeEnd.CpuSeconds - storeStart.CpuSeconds) / tokens * 1_000_000,
                    Math.Max(storePeakRss, storeEnd.RssBytes) / 1048576.0, await stateStore.UsedMemoryAsync() / 1048576.0)
                : null,
        };
    }

    /// <summary>The core of this process, MockInference and h2load (bench/run.sh pins them there).</summary>
    public const int GeneratorCore = 1;

    /// <summary>
    /// A cancellation storm: streams that the client aborts after a random number (1 to 30) of content events;
    /// for each, MockInference's <c>aborted_us</c> minus the client's abort time.
    /// </summary>
    public async Task RunCancellationsAsync(Target target, string baseUrl, bool http2)
    {
        using var client = new StreamClient(target, baseUrl, http2);
        var random = new Random(7);
        var count = settings.Cancellations;
        var ramp = TimeSpan.FromSeconds(settings.CancelRampSeconds);
        var specs = Enumerable.Range(0, count).Select(i => new StreamSpec(Seed(i), 200, settings.TokensPerSecond, settings.TtftMs, Behaviour.Abort)
        {
            AbortAfterEvents = random.Next(1, settings.AbortMaxEvents + 1),
            StartDelay = ramp * i / count,
        }).ToArray();
        var done = await Task.WhenAll(specs.Select(spec => client.RunAsync(spec, null, CancellationToken.None)));

        var propagation = new List<double>(count);
        var errors = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        var protocol = http2 ? "HTTP/2" : "HTTP/1.1";
        await Parallel.ForEachAsync(done, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (result, _) =>
        {
            string? problem = result.Error ?? (result.RequestId is null ? "no x-mock-request-id" : null);
            while (problem is null)
            {
                var record = await _mock.GetFromJsonAsync<MockRequestRecord>($"/mock/requests/{result.RequestId}");
                if (record?.AbortedUs is long aborted)
                {
                    lock (propagation)
                    {
                        propagation.Add(aborted - result.AbortUs);
                    }

                    return;
                }

                // "aborted" without aborted_us: a failed write noticed the abort before the callback ran; wait for it.
                if (record is null || (record.Status != MockRequestStatus.InProgress && record.Status != MockRequestStatus.Aborted))
                {
                    problem = $"upstream request ended '{record?.Status}' without seeing the abort";
                }
                else if (DateTime.UtcNow > deadline)
                {
                    problem = $"the upstream had not seen the abort 15 s after the storm (request {result.RequestId}, {record.TokensGenerated} tokens generated, client aborted after {result.ContentEvents} events)";
                }
                else
                {
                    await Task.Delay(20, CancellationToken.None);
                }
            }

            Interlocked.Increment(ref errors);
            if (target is DirectTarget && problem.StartsWith("the upstream had not seen", StringComparison.Ordinal))
            {
                // The floor has no proxy in between: an abort MockInference never observed is a finding about
                // the mock (or Kestrel), not a target's failure. It is reported, not fatal.
                lock (results.Warnings)
                {
                    results.Warnings.Add($"{target.Name}: cancellation {protocol}: {problem}");
                }

                return;
            }

            Fail(target, $"cancellation {protocol}: {problem}");
        });

        propagation.Sort();
        results.Cancellations.Add(new CancelMetrics(target.Name, protocol, count, propagation.Count,
            Stats.Percentile(propagation, 50), Stats.Percentile(propagation, 99), propagation.Count > 0 ? propagation[^1] : double.NaN, errors));
    }

    /// <summary>
    /// Memory of the proxy while many streams are open: <see cref="Behaviour.HoldOpen"/> (one token, then a long
    /// upstream pause: open but idle) or <see cref="Behaviour.StopReading"/> (the upstream writes as fast as it can,
    /// the client reads nothing more: only backpressure bounds what the proxy holds).
    /// </summary>
    public async Task RunMemoryAsync(Target target, RunningTarget running, Behaviour behaviour, int streams)
    {
        var pids = ProcStat.Tree(running.Process!.Pid);
        var baseline = ProcStat.Read(pids);
        using var client = new StreamClient(target, running.H1Url, http2: false);
        using var stop = new CancellationTokenSource();
        var opened = 0;
        var allOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ramp = TimeSpan.FromSeconds(streams / 2000.0);
        var tasks = Enumerable.Range(0, streams).Select(i =>
        {
            var spec = behaviour == Behaviour.HoldOpen
                ? new StreamSpec(Seed(i), 200, settings.TokensPerSecond, 0, behaviour) { StallAfterTokens = 1, StallMs = 120_000 }
                : new StreamSpec(Seed(i), 4000, 0, 0, behaviour);
            return client.RunAsync(spec with { StartDelay = ramp * i / streams }, () =>
            {
                if (Interlocked.Increment(ref opened) == streams)
                {
                    allOpen.TrySetResult();
                }
            }, stop.Token);
        }).ToArray();

        var all = Task.WhenAll(tasks);
        await Task.WhenAny(allOpen.Task, all, Task.Delay(TimeSpan.FromSeconds(45)));

        // Settle, then the median of several samples (idle), or wait until the proxy's memory stops growing
        // (stalled: it grows while socket buffers and the proxy's own buffers fill).
        var rss = new List<double>();
        for (var i = 0; i < 40; i++)
        {
            await Task.Delay(250);
            rss.Add(ProcStat.Read(pids).RssBytes);
            if (rss.Count >= Math.Max(settings.MemorySamples, 5) && (behaviour == Behaviour.HoldOpen || Math.Abs(rss[^1] - rss[^5]) < rss[^1] * 0.005))
            {
                break;
            }
        }

        var measured = behaviour == Behaviour.HoldOpen ? Stats.Median(rss.TakeLast(settings.MemorySamples * 2 / 3)) : rss[^1];
        var count = Volatile.Read(ref opened);
        await stop.CancelAsync();
        var done = await all;
        var errors = done.Count(r => r.Error is not null) + (streams - count);
        foreach (var problem in done.Where(r => r.Error is not null).Select(r => r.Error).Distinct().Take(3))
        {
            Fail(target, $"{behaviour} memory: {problem}");
        }

        if (count < streams)
        {
            Fail(target, $"{behaviour} memory: only {count} of {streams} streams opened");
        }

        results.Memory.Add(new MemoryMetrics(target.Name, behaviour == Behaviour.HoldOpen ? "idle" : "stalled", streams, count,
            baseline.RssBytes / 1048576.0, measured / 1048576.0, (measured - baseline.RssBytes) / 1024.0 / streams, errors));
    }

    private string? Check(StreamResult result, int seed, int maxTokens)
    {
        if (result.Error is not null)
        {
            return result.Error;
        }

        var expected = _expected[(seed, maxTokens)].Utf8;
        if (!result.Content.WrittenSpan.SequenceEqual(expected))
        {
            return $"content differs from what MockInference generated (seed {seed}: {result.Content.WrittenCount} bytes received, {expected.Length} expected)";
        }

        return null;
    }

    private void Fail(Target target, string problem)
    {
        lock (results.Failures)
        {
            // The first few of each target are enough to see what went wrong.
            if (results.Failures.Count(f => f.StartsWith(target.Name + ":", StringComparison.Ordinal)) < 5)
            {
                results.Failures.Add($"{target.Name}: {problem}");
            }
        }
    }

    private static int Seed(int i) => s_seeds[i % s_seeds.Length];
}

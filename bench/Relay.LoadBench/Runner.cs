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
        foreach (var maxTokens in new[] { settings.ReplyTokens, ProbeTokens })
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

    public async Task RunStreamsAsync(Target target, RunningTarget running, int streams, int run)
    {
        using var client = new StreamClient(target, running.H1Url, http2: false);
        var pids = running.Process is { } process ? ProcStat.Tree(process.Pid) : [];
        var open = 0;
        var samples = new List<(long Rss, int Open)>();
        using var stopSampling = new CancellationTokenSource();
        var baseline = pids.Length > 0 ? ProcStat.Read(pids) : default;
        int[] generator = [Environment.ProcessId, paths.MockPid];
        var generatorStart = ProcStat.Read(generator);
        var wallStart = System.Diagnostics.Stopwatch.GetTimestamp();
        var sampler = pids.Length == 0 ? Task.CompletedTask : Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                samples.Add((ProcStat.Read(pids).RssBytes, Volatile.Read(ref open)));
                await Task.Delay(200, CancellationToken.None);
            }
        });

        // Starts spread over up to 2 s: arrivals, not a SYN flood, and token times spread across the 50 ms period.
        var ramp = TimeSpan.FromSeconds(Math.Min(2.0, streams / 1000.0));
        var tasks = new Task<StreamResult>[streams];
        for (var i = 0; i < streams; i++)
        {
            var spec = new StreamSpec(Seed(i), settings.ReplyTokens, settings.TokensPerSecond, settings.TtftMs, Behaviour.ReadAll) { StartDelay = ramp * i / streams };
            tasks[i] = Counted(client.RunAsync(spec, () => Interlocked.Increment(ref open), CancellationToken.None));
        }

        async Task<StreamResult> Counted(Task<StreamResult> stream)
        {
            var result = await stream;
            if (result.ContentEvents > 0)
            {
                Interlocked.Decrement(ref open);
            }

            return result;
        }

        var done = await Task.WhenAll(tasks);
        var end = pids.Length > 0 ? ProcStat.Read(pids) : default;
        var generatorShare = (ProcStat.Read(generator).CpuSeconds - generatorStart.CpuSeconds) / System.Diagnostics.Stopwatch.GetElapsedTime(wallStart).TotalSeconds;
        await stopSampling.CancelAsync();
        await sampler;

        var errors = 0;
        long tokens = 0;
        long events = 0;
        long bytes = 0;
        var latencies = new List<double>(streams * (settings.ReplyTokens + 4));
        var ttft = new List<double>(streams);
        for (var i = 0; i < streams; i++)
        {
            var result = done[i];
            var problem = Check(result, Seed(i), settings.ReplyTokens);
            if (problem is not null)
            {
                errors++;
                Fail(target, $"{streams} streams: {problem}");
                continue;
            }

            tokens += _expected[(Seed(i), settings.ReplyTokens)].Tokens;
            events += result.Events;
            bytes += result.Bytes;
            ttft.Add(result.FirstContentUs - result.RequestStartUs);
            foreach (var latency in result.LatenciesUs)
            {
                latencies.Add(latency);
            }
        }

        latencies.Sort();
        ttft.Sort();
        var cpu = end.CpuSeconds - baseline.CpuSeconds;
        var steady = samples.Where(s => s.Open >= streams * 0.99).Select(s => (double)s.Rss).ToList();
        var peak = samples.Count > 0 ? samples.Max(s => s.Rss) : 0;
        results.Streams.Add(new StreamMetrics(
            target.Name, streams, run,
            Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), latencies.Count > 0 ? latencies[^1] : double.NaN,
            Stats.Percentile(ttft, 50),
            pids.Length > 0 ? cpu : double.NaN,
            tokens,
            pids.Length > 0 && tokens > 0 ? cpu / tokens * 1_000_000 : double.NaN,
            pids.Length > 0 ? peak / 1048576.0 : double.NaN,
            pids.Length > 0 ? (peak - baseline.RssBytes) / 1024.0 / streams : double.NaN,
            pids.Length > 0 && steady.Count > 0 ? (Stats.Median(steady) - baseline.RssBytes) / 1024.0 / streams : double.NaN,
            tokens > 0 ? (double)events / tokens : double.NaN,
            tokens > 0 ? (double)bytes / tokens : double.NaN,
            errors,
            generatorShare));
    }

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

using System.Diagnostics;
using System.Net;
using Relay.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Relay.IntegrationTests.State;

/// <summary>
/// Resumable streams: the figures for the closing note, run on demand (<c>RELAY_RESUME_FIGURES=1</c>): resume latency, cancel across
/// instances, Redis memory per stream-minute, and CPU per token with resume on and off. Printed, not asserted.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class ResumeFigures(ITestOutputHelper output)
{
    private readonly HttpClient _client = new();

    [FiguresFact]
    public async Task Figures()
    {
        await using var upstream = new MockUpstreamFixture();
        await upstream.InitializeAsync();
        await using var redis = await RedisProcess.StartAsync();
        await using var a = await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(redis));
        await using var b = await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(redis));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var server = connection.GetServer(connection.GetEndPoints()[0]);

        // 1. Resume latency: reconnect (request sent) to the first replayed event, 200 resumes on B of a stream A relays.
        var knobs = Knobs(seed: 5, maxTokens: 3000, tokensPerSecond: 50);
        var live = await _client.SendAsync(ResumeClient.Start(a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
        var liveReading = ResumeClient.ReadAsync(live);
        while (await connection.GetDatabase().StreamLengthAsync($"relay:resume:{{{streamId}}}:events") < 20)
        {
            await Task.Delay(20);
        }

        var resumes = new List<double>();
        for (var i = 0; i < 220; i++)
        {
            var clock = Stopwatch.StartNew();
            using var resumed = await _client.SendAsync(ResumeClient.Resume(b.Url, streamId, $"{streamId}:{1 + (i % 15)}"), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            await ResumeClient.ReadAsync(resumed, take: 1);
            if (i >= 20)
            {
                resumes.Add(clock.Elapsed.TotalMilliseconds); // The first 20 warm up (JIT).
            }
        }

        output.WriteLine($"resume latency (request sent -> first replayed event, B, 200 resumes): p50 {P(resumes, 50):F2} ms, p99 {P(resumes, 99):F2} ms");

        // 2. Cancel across instances: cancel sent to B -> the upstream (mock) sees A's abort.
        using (var cancel = await _client.SendAsync(ResumeClient.Cancel(b.Url, streamId)))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        await liveReading;
        live.Dispose();
        var cancels = new List<double>();
        for (var i = 0; i < 45; i++)
        {
            using var response = await _client.SendAsync(ResumeClient.Start(a.Url, Knobs(seed: 100 + i, maxTokens: 3000, tokensPerSecond: 50)), HttpCompletionOption.ResponseHeadersRead);
            var id = response.Headers.GetValues("Relay-Stream-Id").Single();
            var requestId = response.Headers.GetValues("x-mock-request-id").Single();
            var reading = ResumeClient.ReadAsync(response);
            await upstream.WaitForRecordAsync(requestId, r => r.GetProperty("tokens_generated").GetInt32() >= 3);
            var clock = Stopwatch.StartNew();
            using (var cancelled = await _client.SendAsync(ResumeClient.Cancel(b.Url, id)))
            {
                Assert.True(cancelled.StatusCode == HttpStatusCode.Accepted, $"{(int)cancelled.StatusCode} {await cancelled.Content.ReadAsStringAsync()}");
            }

            try
            {
                await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted, timeout: Deadline.Default, poll: TimeSpan.FromMilliseconds(1));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"round {i}: not aborted; A: {string.Join(" | ", a.Logs.GetSnapshot().Where(static r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Information).TakeLast(8).Select(static r => r.Message + r.Exception))}");
            }

            if (i >= 5)
            {
                cancels.Add(clock.Elapsed.TotalMilliseconds);
            }

            await reading;
        }

        output.WriteLine($"cancel across instances (cancel sent to B -> upstream abort seen, 40 cancels, 1 ms poll of the mock): p50 {P(cancels, 50):F2} ms, p99 {P(cancels, 99):F2} ms");

        // 3. Redis memory per stream-minute at 50 tokens/s: 10 streams of 15 s each, kept (retention) after they end.
        await server.FlushDatabaseAsync();
        var before = UsedMemory(server);
        var streams = await Task.WhenAll(Enumerable.Range(0, 10).Select(async i =>
        {
            using var response = await _client.SendAsync(ResumeClient.Start(a.Url, Knobs(seed: 200 + i, maxTokens: 750, tokensPerSecond: 50)), HttpCompletionOption.ResponseHeadersRead);
            var clock = Stopwatch.StartNew();
            var events = await ResumeClient.ReadAsync(response);
            return (events.Count, clock.Elapsed);
        }));
        var after = UsedMemory(server);
        var minutes = streams.Sum(static s => s.Elapsed.TotalMinutes);
        long keyBytes = 0;
        foreach (var key in server.Keys(pattern: "relay:resume:*"))
        {
            keyBytes += (long)(await connection.GetDatabase().ExecuteAsync("MEMORY", "USAGE", key, "SAMPLES", "0"));
        }

        output.WriteLine($"Redis memory per stream-minute at 50 tok/s: {(after - before) / minutes / 1024:F0} KiB (INFO used_memory), {keyBytes / minutes / 1024:F0} KiB (MEMORY USAGE of the keys); {streams.Average(static s => s.Count):F0} events per 15 s stream");

        // 4. CPU per token, resume on vs off (this process: Relay A, the mock and the client; minus a direct run).
        var direct = await CpuAsync(() => DirectRunAsync(upstream.Url));
        var off = await CpuAsync(() => RelayRunAsync(a.Url, resumable: false));
        var on = await CpuAsync(() => RelayRunAsync(a.Url, resumable: true));
        direct = await CpuAsync(() => DirectRunAsync(upstream.Url));
        off = await CpuAsync(() => RelayRunAsync(a.Url, resumable: false));
        on = await CpuAsync(() => RelayRunAsync(a.Url, resumable: true));
        const double tokens = 20 * 400;
        output.WriteLine($"CPU per token (Relay's share = run - direct run): off {(off - direct) / tokens * 1e6:F1} us, on {(on - direct) / tokens * 1e6:F1} us, ratio {(on - direct) / (off - direct):F2} (direct {direct / tokens * 1e6:F1} us)");
    }

    private static Dictionary<string, string> Knobs(int seed, int maxTokens, int tokensPerSecond) => new()
    {
        ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-ttft-ms"] = "0",
    };

    private static long UsedMemory(IServer server)
        => long.Parse(server.Info("memory").SelectMany(static g => g).First(static kv => kv.Key == "used_memory").Value, System.Globalization.CultureInfo.InvariantCulture);

    private static double P(List<double> values, int percentile)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(percentile / 100.0 * sorted.Count) - 1)];
    }

    private static async Task<double> CpuAsync(Func<Task> run)
    {
        var process = Process.GetCurrentProcess();
        var start = process.TotalProcessorTime;
        await run();
        process.Refresh();
        return (process.TotalProcessorTime - start).TotalSeconds;
    }

    private Task RelayRunAsync(string url, bool resumable) => Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
    {
        using var response = await _client.SendAsync(ResumeClient.Start(url, Knobs(300 + i, 400, 200), resumable), HttpCompletionOption.ResponseHeadersRead);
        await ResumeClient.ReadAsync(response);
    }));

    private Task DirectRunAsync(string url) => Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
    {
        using var response = await _client.SendAsync(ResumeClient.Start(url, Knobs(300 + i, 400, 200), resumable: false), HttpCompletionOption.ResponseHeadersRead);
        await ResumeClient.ReadAsync(response);
    }));

    private sealed class FiguresFactAttribute : FactAttribute
    {
        public FiguresFactAttribute()
        {
            if (Environment.GetEnvironmentVariable("RELAY_RESUME_FIGURES") != "1")
            {
                Skip = "Figures for the closing note: set RELAY_RESUME_FIGURES=1 (needs redis-server; takes about two minutes).";
            }
            else if (RedisProcess.Binary is null)
            {
                Skip = RedisProcess.MissingReason;
            }
        }
    }
}

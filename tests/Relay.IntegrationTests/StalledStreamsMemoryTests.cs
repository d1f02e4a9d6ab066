using System.Net;
using System.Net.Sockets;
using System.Text;
using Relay.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Relay.IntegrationTests;

/// <summary>
/// Backpressure: with 1,000 streams whose clients stopped reading, Relay's memory stays flat. Relay runs as
/// its own process (so its resident memory is its alone); the clients are raw sockets with small receive buffers
/// that read the response head and then nothing. Once the buffers on the way are full (Relay's bounded per-stream
/// buffer, its pipe, the kernel's socket buffers), the upstream is pushed back: MockInference stops generating, and
/// Relay's memory stops growing. The control raises the per-stream bound to 16 MiB and shows the measure sees growth.
/// The requests ask for <c>logprobs</c> with 20 alternatives, as real clients do, which makes each chunk about 2 KB:
/// the buffers on the way fill after a few hundred chunks instead of a few thousand, so the test stays cheap.
/// </summary>
[Collection(IsolatedCollection.Name)]
public sealed class StalledStreamsMemoryTests(ITestOutputHelper output) : IAsyncLifetime
{
    // In a collection that runs alone, after the parallel ones: 1,000 streams filling their buffers would load the
    // machine under the tests running beside them.
    private readonly MockUpstreamFixture upstream = new();

    private const int TokensPerSecond = 500;

    // About 9 MB of chunks per stream: far more than the buffers on the way hold (the mock builds a reply up front,
    // so this is also not made needlessly large).
    private const int ReplyTokens = 4000;
    private static readonly TimeSpan s_window = TimeSpan.FromSeconds(3);

    // How long opening the streams may go without one more of them answered: a stuck relay, not a slow machine.
    private static readonly TimeSpan s_noProgressLimit = TimeSpan.FromSeconds(60);

    public Task InitializeAsync() => upstream.InitializeAsync();

    public Task DisposeAsync() => upstream.DisposeAsync();

    [Fact]
    public async Task ThousandStalledClients_MemoryAndUpstreamGenerationStayFlat()
    {
        const int streams = 1000;
        var result = await MeasureAsync(streams, maxBufferedBytes: null);

        // Without backpressure the upstream would generate streams x TokensPerSecond x window tokens in the window.
        var unbounded = streams * TokensPerSecond * s_window.TotalSeconds;
        // What was generated before the stall sits mostly in the kernel's loopback socket buffers (they autotune to
        // megabytes), not in Relay; no stream got near the end of its reply.
        Assert.True(result.Tokens2 < streams * ReplyTokens / 2, $"the streams were not held back: {result}");
        Assert.True(result.TokensInWindow < unbounded / 100, $"the upstream generated {result.TokensInWindow} tokens in the window (unbounded: {unbounded}): {result}");
        Assert.True(result.GrowthInWindow < 16L << 20, $"Relay's memory grew {result.GrowthInWindow >> 20} MiB while every client was stalled: {result}");
        // Bounded, not proportional to the data: a relay that held what the upstream sent would need megabytes per
        // stream. The bound is loose (a Debug build; the GC heap's and Kestrel's pools' high-water marks count in
        // RSS); bench/README.md has the Release figure per stalled stream.
        Assert.True(result.PerStream < 1 << 20, $"{result.PerStream >> 10} KiB per stalled stream (bound 1 MiB): {result}");
    }

    [Fact]
    public async Task Control_BufferBoundRaised_UpstreamKeepsGeneratingAndMemoryGrows()
    {
        // 40 streams: about 20 MiB of events buffered by the end of the measure, well over the 8 MiB threshold (with a
        // few streams the measure sees little more than the buffered bytes). Not a window of wall-clock time (a loaded machine generates slower): the measure runs until the upstream has
        // generated half of every reply, the amount the stalled streams above stay below, and fails only when the
        // generation stops for good (pushed back) before that.
        const int streams = 40;
        var result = await MeasureAsync(streams, maxBufferedBytes: 16 << 20, waitForStall: false);

        Assert.True(result.Tokens2 >= streams * ReplyTokens / 2, $"the upstream was pushed back although Relay may buffer 16 MiB per stream: {result}");
        Assert.True(result.GrowthInWindow > 8L << 20, $"memory did not grow: the measure cannot see buffering: {result}");
    }

    private async Task<Measurement> MeasureAsync(int streams, int? maxBufferedBytes, bool waitForStall = true)
    {
        var port = FreePort.Next();
        var args = new List<string>
        {
            "--urls", $"http://127.0.0.1:{port}", "--Relay:Upstream:BaseUrl", upstream.Url,
            "--Relay:Timeouts:WriteStallSeconds", "0", // keep the stalled streams open for the whole measurement
        };
        if (maxBufferedBytes is { } bound)
        {
            args.AddRange(["--Relay:Backpressure:MaxBufferedBytes", bound.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        var relay = DotnetProcess.Start(DotnetProcess.BuiltDll("Relay"), [.. args]);
        var sockets = new List<TcpClient>();
        using var abandon = new CancellationTokenSource();
        try
        {
            await DotnetProcess.WaitListeningAsync(relay, port);
            using (var client = new HttpClient())
            {
                // Warm the process (JIT, pools) with one stream read to the end, then take the baseline.
                using var warm = SseRead.ChatRequest($"http://127.0.0.1:{port}", headers: new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "0", ["x-mock-max-tokens"] = "50" });
                using var response = await client.SendAsync(warm, HttpCompletionOption.ResponseHeadersRead);
                await SseRead.ReadAllAsync(response);
            }

            var baseline = DotnetProcess.ResidentBytes(relay);
            // In batches, so that the streams of one batch compete with each other only; earlier streams stall meanwhile.
            // A loaded machine may take long to answer 100 heads: wait as long as heads keep arriving.
            var ids = new List<string>();
            foreach (var batch in Enumerable.Range(0, streams).Chunk(100))
            {
                var opened = await WhenAllWhileProgressingAsync(batch.Select(_ => OpenStalledStreamAsync(port, sockets, abandon.Token)).ToList());
                ids.AddRange(opened);
            }

            if (waitForStall)
            {
                // Poll the upstream's records until generation has stopped for every stream (observed state): no token
                // between two polls, three times in a row, so that a pause of a loaded machine does not pass for the stall.
                // A relay without backpressure would let the streams run on to the end of their replies: stop waiting
                // there, and let the assertions below say what was measured.
                var previous = await TokensGeneratedAsync(ids);
                var unchanged = 0;
                while (unchanged < 3 && previous < streams * ReplyTokens / 2)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500));
                    var now = await TokensGeneratedAsync(ids);
                    unchanged = now == previous ? unchanged + 1 : 0;
                    previous = now;
                }
            }

            var tokens1 = await TokensGeneratedAsync(ids);
            var rss1 = DotnetProcess.ResidentBytes(relay);
            if (waitForStall)
            {
                await Task.Delay(s_window); // the measurement window, not a synchronisation
            }
            else
            {
                await WaitForHalfOfEveryReplyAsync(ids, streams);
            }

            var tokens2 = await TokensGeneratedAsync(ids);
            var rss2 = DotnetProcess.ResidentBytes(relay);
            Assert.False(relay.HasExited);
            var measurement = new Measurement(streams, baseline, rss1, rss2, tokens1, tokens2);
            output.WriteLine(measurement.ToString());
            return measurement;
        }
        finally
        {
            await abandon.CancelAsync();
            lock (sockets)
            {
                foreach (var s in sockets)
                {
                    s.Dispose();
                }
            }

            await DotnetProcess.StopAsync(relay);
        }
    }

    /// <summary>
    /// Waits until the upstream has generated half of every reply in all, as long as it generates more now and then:
    /// stops when no token came for <see cref="s_noProgressLimit"/> (the upstream was pushed back; the caller asserts).
    /// </summary>
    private async Task WaitForHalfOfEveryReplyAsync(List<string> ids, int streams)
    {
        var previous = await TokensGeneratedAsync(ids);
        var progressAt = DateTime.UtcNow;
        while (previous < streams * ReplyTokens / 2 && DateTime.UtcNow - progressAt < s_noProgressLimit)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            var now = await TokensGeneratedAsync(ids);
            if (now != previous)
            {
                progressAt = DateTime.UtcNow;
            }

            previous = now;
        }
    }

    private async Task<long> TokensGeneratedAsync(List<string> ids)
    {
        long total = 0;
        foreach (var chunk in ids.Chunk(50))
        {
            var records = await Task.WhenAll(chunk.Select(upstream.RecordAsync));
            total += records.Sum(r => r.GetProperty("tokens_generated").GetInt64());
        }

        return total;
    }

    /// <summary>
    /// Opens a stream whose client reads the head and then nothing; returns the upstream's request id. The socket goes
    /// into <paramref name="sockets"/> at once, so that it is closed at the end whatever happens to the others.
    /// </summary>
    private static async Task<string> OpenStalledStreamAsync(int port, List<TcpClient> sockets, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient { ReceiveBufferSize = 4096 };
        lock (sockets)
        {
            sockets.Add(tcp);
        }

        await tcp.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
        var stream = tcp.GetStream();
        var body = """{"model":"mock","messages":[{"role":"user","content":"Write a long story."}],"stream":true,"logprobs":true,"top_logprobs":20}""";
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n"
            + $"x-mock-tokens-per-second: {TokensPerSecond}\r\nx-mock-ttft-ms: 0\r\nx-mock-max-tokens: {ReplyTokens}\r\n\r\n";
        await stream.WriteAsync(Encoding.UTF8.GetBytes(head + body), cancellationToken);
        var headers = await CancellationTests.ReadHeadAsync(stream, cancellationToken);
        Assert.StartsWith("HTTP/1.1 200", headers);
        return headers.Split("\r\n").Single(l => l.StartsWith("x-mock-request-id:", StringComparison.OrdinalIgnoreCase)).Split(':', 2)[1].Trim();
    }

    /// <summary>
    /// The results of <paramref name="tasks"/>, waiting as long as one of them completes now and then: fails only when
    /// none has completed for <see cref="s_noProgressLimit"/>, never because the whole took long on a loaded machine.
    /// </summary>
    private static async Task<T[]> WhenAllWhileProgressingAsync<T>(List<Task<T>> tasks)
    {
        var pending = new List<Task<T>>(tasks);
        while (pending.Count > 0)
        {
            var any = Task.WhenAny(pending);
            if (await Task.WhenAny(any, Task.Delay(s_noProgressLimit)) != any)
            {
                Assert.Fail($"{tasks.Count - pending.Count} of {tasks.Count} streams opened, then none for {s_noProgressLimit.TotalSeconds} s");
            }

            pending.RemoveAll(static t => t.IsCompleted);
        }

        return await Task.WhenAll(tasks);
    }

    private sealed record Measurement(int Streams, long Baseline, long Rss1, long Rss2, long Tokens1, long Tokens2)
    {
        public long TokensInWindow => Tokens2 - Tokens1;

        public long GrowthInWindow => Rss2 - Rss1;

        public long PerStream => (Math.Max(Rss1, Rss2) - Baseline) / Streams;

        public override string ToString() =>
            $"{Streams} streams, RSS baseline {Baseline >> 20} MiB, stalled {Rss1 >> 20} MiB, then {Rss2 >> 20} MiB ({PerStream >> 10} KiB/stream); upstream tokens {Tokens1} -> {Tokens2}";
    }
}

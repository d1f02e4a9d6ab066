using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using StackExchange.Redis;

namespace Relay.IntegrationTests.State;

/// <summary>
/// A resumed stream that is still generating is followed live: the follower on instance B is woken by the blocking read
/// of B's live feed when A adds an event, and reads Redis once per event, not on a timer.
/// </summary>
public sealed class LiveFollowTests(MockUpstreamFixture upstream, SharedRelays shared, Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>, IClassFixture<SharedRelays>
{
    private readonly HttpClient _client = new();
    private ConnectionMultiplexer? _admin;

    public async Task InitializeAsync()
    {
        if (RedisProcess.Binary is null)
        {
            return;
        }

        await shared.StartOnceAsync(async redis => (
            await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(redis)),
            await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(redis))));
        _admin = await ConnectionMultiplexer.ConnectAsync(shared.Redis.ConnectionString + ",allowAdmin=true");
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        if (_admin is not null)
        {
            await _admin.DisposeAsync();
        }
    }

    private static Dictionary<string, string> Knobs(int seed, int maxTokens, int tokensPerSecond) => new()
    {
        ["x-mock-seed"] = seed.ToString(CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = maxTokens.ToString(CultureInfo.InvariantCulture),
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture),
        ["x-mock-ttft-ms"] = "0",
    };

    [RedisFact]
    public async Task Follower_ReadsRedisOncePerEvent_NotEveryFewMilliseconds_AndGetsTheWholeText()
    {
        // 15 tokens at 5 tokens/s: 3 s of a live stream, one event per token. A follower that polled every 10 ms (as
        // before the live feed) read Redis about 600 times in that time (an XRANGE and an HGET per poll).
        var knobs = Knobs(seed: 41, maxTokens: 15, tokensPerSecond: 5);
        var expected = await ResumeClient.MockTextAsync(_client, upstream.Url, knobs);
        using var live = await _client.SendAsync(ResumeClient.Start(shared.A.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
        var liveReading = ResumeClient.ReadAsync(live);
        var server = _admin!.GetServer(_admin.GetEndPoints()[0]);
        await server.ConfigResetStatisticsAsync();

        using var followed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, followed.StatusCode);
        var events = await ResumeClient.ReadAsync(followed);

        Assert.True(events[^1].IsDone);
        Assert.Equal(expected, ResumeClient.Text(events));
        Assert.Equal(ResumeClient.Text(await liveReading), ResumeClient.Text(events));
        var reads = Calls(server, "xrange") + Calls(server, "hget");
        Assert.True(reads <= (2 * events.Count) + 12, $"{reads} reads of Redis for {events.Count} events followed over 3 s");
    }

    [RedisFact]
    public async Task Follower_GetsMostLiveEvents_BeforeTheLiveClientGetsTheNext_EvenWhenTheBlockedReadDidNotNameItsStream()
    {
        // B's live read blocks on a first stream that stalls (4 s per read, so it does not come back by itself). A
        // second stream followed meanwhile must wake it: without that, its follower gets events only when that read
        // runs out, up to 4 s later, while the live client gets one every 500 ms. The followers' own one-second fallback
        // is switched off, so events reach a follower through the feed's reads alone.
        var feed = shared.B.App.Services.GetRequiredService<Relay.Middleware.Resume.LiveEventFeed>();
        var block = feed.Block;
        feed.Block = TimeSpan.FromSeconds(4);
        feed.FollowerWaitOverride = Deadline.Default;
        var stalling = Knobs(seed: 43, maxTokens: 10, tokensPerSecond: 0);
        stalling["x-mock-stall-after-tokens"] = "2";
        stalling["x-mock-stall-ms"] = "15000"; // Quiet for the whole test (cancelled at its end).
        using var quiet = await _client.SendAsync(ResumeClient.Start(shared.A.Url, stalling), HttpCompletionOption.ResponseHeadersRead);
        var quietId = quiet.Headers.GetValues("Relay-Stream-Id").Single();
        try
        {
            var reads = feed.Reads;
            using var quietFollowed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, quietId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
            var quietReading = ResumeClient.ReadAsync(quietFollowed); // Followed (and so named by B's reads) until the cancel.

            // B's second read since the follow began names the quiet stream, and the one sent after it blocks for its whole
            // 4 s: without a wake, it holds the events of a stream followed meanwhile.
            await NextReadAsync(feed, reads + 2);

            // 12 tokens at 2 tokens/s (about 6 s), followed on B at once.
            var knobs = Knobs(seed: 42, maxTokens: 12, tokensPerSecond: 2);
            using var live = await _client.SendAsync(ResumeClient.Start(shared.A.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
            var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
            var clock = Stopwatch.StartNew();
            var liveTimes = new Dictionary<long, double>();
            var liveReading = ReadTimedAsync(live, liveTimes, clock);
            var followStarted = clock.Elapsed.TotalMilliseconds;
            using var followed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
            var followerTimes = new Dictionary<long, double>();
            await ReadTimedAsync(followed, followerTimes, clock);
            await liveReading;

            // Events the live client had before the follow began are replayed. Of the later ones, most must reach the
            // follower before the live client has the next one (the upstream emits one every 500 ms): an order of
            // events the upstream paces, not a time. Without the wake the events of the blocked read's 4 s wait for it
            // to run out (the followers' own fallback is off), so about eight in eleven come later than that. The delays
            // behind the live client are printed, not asserted.
            var compared = liveTimes.Keys.Where(k => liveTimes[k] > followStarted && liveTimes.ContainsKey(k + 1)).Order().ToList();
            output.WriteLine("follower delays behind the live client (ms): " + string.Join(", ", compared.Select(k => (followerTimes[k] - liveTimes[k]).ToString("F0", CultureInfo.InvariantCulture))));
            Assert.True(compared.Count >= 8, $"{compared.Count} live events compared");
            var late = compared.Where(k => followerTimes[k] >= liveTimes[k + 1]).ToList();
            Assert.True(late.Count * 2 < compared.Count, $"{late.Count} of {compared.Count} events reached the follower after the live client had the next one: {string.Join(", ", late)}");

            using (await _client.SendAsync(ResumeClient.Cancel(shared.A.Url, quietId)))
            {
            }

            Assert.Equal("stream_cancelled", (await quietReading.WaitAsync(Deadline.Default))[^1].ErrorCode);
        }
        finally
        {
            feed.Block = block;
            feed.FollowerWaitOverride = null;
            using var cancel = await _client.SendAsync(ResumeClient.Cancel(shared.A.Url, quietId)); // Nothing left generating for the next test, also after a failure.
        }
    }

    /// <summary>Waits until the feed has sent <paramref name="reads"/> reads in all.</summary>
    private static async Task NextReadAsync(Relay.Middleware.Resume.LiveEventFeed feed, long reads)
    {
        var clock = Stopwatch.StartNew();
        while (feed.Reads < reads)
        {
            Assert.True(clock.Elapsed < Deadline.Default, "the live feed sent no read");
            await Task.Delay(1); // A bounded poll of the feed's counter, not a sleep that orders anything.
        }
    }

    [RedisFact]
    public async Task ManyFollowedStreams_OneLiveReadAtMostEveryFiveMs_EachPicksUpEverythingThatArrived_TheTextsAreWhole()
    {
        // 24 streams at 50 tokens/s followed on B: about 1,200 events a second. A read per event would be sent about
        // as often (each naming all 24 streams); reads at most every 5 ms are at most 200 a second. Counted while all
        // 24 are followed: from when each follower has its first event until the first follow ends.
        const int Streams = 24;
        var starts = await Task.WhenAll(Enumerable.Range(0, Streams).Select(async i =>
        {
            var knobs = Knobs(seed: 60 + i, maxTokens: 200, tokensPerSecond: 50);
            var live = await _client.SendAsync(ResumeClient.Start(shared.A.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
            return (Live: live, Id: live.Headers.GetValues("Relay-Stream-Id").Single());
        }));
        var firstEvents = new List<Task>();
        var follows = starts.Select(s =>
        {
            var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            firstEvents.Add(first.Task);
            return FollowAsync(s.Live, s.Id, first);
        }).ToList();
        await Task.WhenAll(firstEvents);
        // Counted by the feed: Redis's own count of XREAD counts a read that blocked and was then served twice.
        var feed = shared.B.App.Services.GetRequiredService<Relay.Middleware.Resume.LiveEventFeed>();
        var before = feed.Reads;
        var clock = Stopwatch.StartNew();
        await Task.WhenAny(follows);
        var reads = feed.Reads - before;
        var seconds = clock.Elapsed.TotalSeconds;
        var results = await Task.WhenAll(follows);
        foreach (var s in starts)
        {
            s.Live.Dispose();
        }

        Assert.All(results, static r => Assert.Equal(r.Live, r.Followed));
        Assert.True(seconds > 1, $"the window lasted {seconds:F1} s");
        Assert.True(reads <= (200 * seconds) + 10, $"{reads} live reads in {seconds:F1} s");

        async Task<(string Live, string Followed)> FollowAsync(HttpResponseMessage live, string id, TaskCompletionSource first)
        {
            var liveReading = ResumeClient.ReadAsync(live);
            using var followed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, id, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
            var text = new System.Text.StringBuilder();
            await using var stream = await followed.Content.ReadAsStreamAsync();
            await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(stream).EnumerateAsync())
            {
                first.TrySetResult();
                text.Append(new ResumedEvent(null, item.Data).Content);
            }

            first.TrySetResult();
            return (ResumeClient.Text(await liveReading), text.ToString());
        }
    }

    [RedisFact]
    public async Task InstanceRelayingTheStreamIsKilled_ItsFollowerOnB_EndsWithRelayShutdown_InsteadOfWaitingForever()
    {
        // A is a process killed with SIGKILL mid-stream: it never ends the stream (no final event, its state stays
        // "running" until a safety expiry), so only its lapsed liveness key tells B's follower.
        var environment = ResumableStreamTests.ResumeSettings(shared.Redis).Where(static kv => kv.Value is not null)
            .ToDictionary(static kv => kv.Key.Replace(":", "__", StringComparison.Ordinal), static kv => kv.Value!);
        var doomed = await RelayChildProcess.StartAsync(upstream.Url, environment);
        var killed = false;
        HttpResponseMessage? live = null;
        try
        {
            live = await _client.SendAsync(ResumeClient.Start(doomed.Url, Knobs(seed: 44, maxTokens: 400, tokensPerSecond: 10)), HttpCompletionOption.ResponseHeadersRead);
            var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
            await ResumeClient.ReadAsync(live, take: 2);
            using var followed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, followed.StatusCode);
            var reading = ResumeClient.ReadAsync(followed);
            killed = true;
            await doomed.DisposeAsync();

            // Ended by the lapse of A's liveness key, not by the stream's safety expiry (many minutes away).
            var events = await reading.WaitAsync(Deadline.Default);
            Assert.True(events.Count >= 3, $"{events.Count} events");
            Assert.Equal("relay_shutdown", events[^1].ErrorCode);
        }
        finally
        {
            live?.Dispose();
            if (!killed)
            {
                await doomed.DisposeAsync();
            }
        }
    }

    [RedisFact]
    public async Task ClientThatStopsReading_AResumableStream_IsLetGoAfterTheWriteStall_AndGenerationGoesOnToTheEnd()
    {
        // The client reads the response head and then nothing (its connection stays open); one event per token, so the
        // stream (about 20 MB) is far more than the sockets' buffers take.
        await using var relay = await StartStallingRelayAsync();
        using var tcp = new System.Net.Sockets.TcpClient { ReceiveBufferSize = 4096 };
        var (requestId, streamId) = await StartStalledStreamAsync(tcp, relay, resumable: true);

        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished, StallDeadline, poll: TimeSpan.FromMilliseconds(250));
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString());
        Assert.Equal(StallTokens, record.GetProperty("tokens_generated").GetInt32());
        // Logged when the relay loop has ended, which may be a little after the upstream's record says finished: waited for.
        var ended = await relay.WaitForLogAsync(static r => r.Id.Name == "StreamEnded");
        Assert.Contains("end Completed", ended.Message, StringComparison.Ordinal);

        // The stream ended in Redis with its last event, for the client to resume (its first events are trimmed by
        // Resume:MaxEvents: 100,000 events are more than a stream keeps).
        using var resumed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, streamId!, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.True((await ResumeClient.ReadAsync(resumed))[^1].IsDone);
    }

    [RedisFact]
    public async Task Control_ClientThatStopsReading_APlainStreamOnTheSameRoute_IsCancelledAfterTheWriteStall_UpstreamToo()
    {
        await using var relay = await StartStallingRelayAsync();
        using var tcp = new System.Net.Sockets.TcpClient { ReceiveBufferSize = 4096 };
        var (requestId, streamId) = await StartStalledStreamAsync(tcp, relay, resumable: false);

        Assert.Null(streamId);
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished, StallDeadline, poll: TimeSpan.FromMilliseconds(250));
        Assert.True(MockUpstreamFixture.IsAborted(record), record.ToString());
        var ended = await relay.WaitForLogAsync(static r => r.Id.Name == "StreamEnded");
        Assert.Contains("end WriteStallTimeout", ended.Message, StringComparison.Ordinal);
    }

    private const int StallTokens = 100_000;

    /// <summary>For 100,000 tokens at full speed (about 20 MB through Relay) on a loaded machine.</summary>
    private static readonly TimeSpan StallDeadline = Deadline.Default * 2;

    private Task<InProcessRelay> StartStallingRelayAsync()
    {
        var settings = ResumableStreamTests.ResumeSettings(shared.Redis);
        settings["Relay:Timeouts:WriteStallSeconds"] = "1";
        return InProcessRelay.StartAsync(upstream.Url, settings);
    }

    /// <summary>Sends a chat stream request over a raw socket and reads only the response head: the mock's request id and the stream id (null when not resumable).</summary>
    private static async Task<(string RequestId, string? StreamId)> StartStalledStreamAsync(System.Net.Sockets.TcpClient tcp, InProcessRelay relay, bool resumable)
    {
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(relay.Url).Port);
        var stream = tcp.GetStream();
        var options = resumable ? """{"resumable":true,"chunk_size":1}""" : """{"chunk_size":1}""";
        var body = $$"""{"model":"mock","messages":[{"role":"user","content":"Say something."}],"stream":true,"stream_options":{{options}}}""";
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nAuthorization: Bearer {AuthTests.ClientKey}\r\n"
            + $"Content-Length: {System.Text.Encoding.UTF8.GetByteCount(body)}\r\nx-mock-tokens-per-second: 0\r\nx-mock-ttft-ms: 0\r\nx-mock-max-tokens: {StallTokens}\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(head + body));
        var headers = (await CancellationTests.ReadHeadAsync(stream)).Split("\r\n");
        string? Header(string name) => headers.SingleOrDefault(l => l.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))?.Split(':', 2)[1].Trim();
        return (Header("x-mock-request-id")!, Header("Relay-Stream-Id"));
    }

    private static async Task ReadTimedAsync(HttpResponseMessage response, Dictionary<long, double> times, Stopwatch clock)
    {
        await using var stream = await response.Content.ReadAsStreamAsync();
        var parser = System.Net.ServerSentEvents.SseParser.Create(stream);
        await foreach (var item in parser.EnumerateAsync())
        {
            var id = parser.LastEventId;
            times[long.Parse(id[(id.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)] = clock.Elapsed.TotalMilliseconds;
        }
    }

    private static long Calls(IServer server, string command)
    {
        var stats = server.Info("commandstats").SelectMany(static g => g).FirstOrDefault(kv => kv.Key == "cmdstat_" + command).Value;
        if (stats is null)
        {
            return 0;
        }

        var calls = stats.Split(',')[0]; // calls=N,usec=...
        return long.Parse(calls[(calls.IndexOf('=') + 1)..], CultureInfo.InvariantCulture);
    }
}

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
public sealed class LiveFollowTests(MockUpstreamFixture upstream) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    private readonly HttpClient _client = new();
    private RedisProcess? _redis;
    private ConnectionMultiplexer? _admin;
    private InProcessRelay _a = null!;
    private InProcessRelay _b = null!;

    public async Task InitializeAsync()
    {
        if (RedisProcess.Binary is null)
        {
            return;
        }

        _redis = await RedisProcess.StartAsync();
        _admin = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString + ",allowAdmin=true");
        _a = await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(_redis));
        _b = await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(_redis));
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        if (_redis is not null)
        {
            await _a.DisposeAsync();
            await _b.DisposeAsync();
            await _admin!.DisposeAsync();
            await _redis.DisposeAsync();
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
        using var live = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
        var liveReading = ResumeClient.ReadAsync(live);
        var server = _admin!.GetServer(_admin.GetEndPoints()[0]);
        await server.ConfigResetStatisticsAsync();

        using var followed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, followed.StatusCode);
        var events = await ResumeClient.ReadAsync(followed);

        Assert.True(events[^1].IsDone);
        Assert.Equal(expected, ResumeClient.Text(events));
        Assert.Equal(ResumeClient.Text(await liveReading), ResumeClient.Text(events));
        var reads = Calls(server, "xrange") + Calls(server, "hget");
        Assert.True(reads <= (2 * events.Count) + 12, $"{reads} reads of Redis for {events.Count} events followed over 3 s");
    }

    [RedisFact]
    public async Task Follower_GetsEachLiveEvent_WithinMillisecondsOfTheLiveClient_EvenWhenTheBlockedReadDidNotNameItsStream()
    {
        // B's live read blocks on a first stream that stalls (4 s per read, so it does not come back by itself). A
        // second stream followed meanwhile must wake it: without that, its follower gets events only when its own
        // one-second timeout runs out.
        _b.App.Services.GetRequiredService<Relay.Middleware.Resume.LiveEventFeed>().Block = TimeSpan.FromSeconds(4);
        var stalling = Knobs(seed: 43, maxTokens: 10, tokensPerSecond: 0);
        stalling["x-mock-stall-after-tokens"] = "2";
        stalling["x-mock-stall-ms"] = "6000";
        using var quiet = await _client.SendAsync(ResumeClient.Start(_a.Url, stalling), HttpCompletionOption.ResponseHeadersRead);
        var quietId = quiet.Headers.GetValues("Relay-Stream-Id").Single();
        using var quietFollowed = await _client.SendAsync(ResumeClient.Resume(_b.Url, quietId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(2, (await ResumeClient.ReadAsync(quietFollowed, take: 2)).Count);

        // 12 tokens at 4 tokens/s, followed on B while the read blocks on the quiet stream.
        var knobs = Knobs(seed: 42, maxTokens: 12, tokensPerSecond: 4);
        using var live = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
        var clock = Stopwatch.StartNew();
        var liveTimes = new Dictionary<long, double>();
        var liveReading = ReadTimedAsync(live, liveTimes, clock);
        var followStarted = clock.Elapsed.TotalMilliseconds;
        using var followed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        var followerTimes = new Dictionary<long, double>();
        await ReadTimedAsync(followed, followerTimes, clock);
        await liveReading;

        // Events already there when the follow started are replayed at once; the later ones are compared.
        var delays = followerTimes.Where(f => liveTimes.TryGetValue(f.Key, out var at) && at > followStarted + 50).Select(f => f.Value - liveTimes[f.Key]).Order().ToList();
        Assert.True(delays.Count >= 8, $"{delays.Count} live events compared");
        Assert.True(delays[^1] < 500, $"follower delays behind the live client (ms): {string.Join(", ", delays.Select(static d => d.ToString("F0", CultureInfo.InvariantCulture)))}");
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
            var live = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
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
        var feed = _b.App.Services.GetRequiredService<Relay.Middleware.Resume.LiveEventFeed>();
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
            using var followed = await _client.SendAsync(ResumeClient.Resume(_b.Url, id, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
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
        var environment = ResumableStreamTests.ResumeSettings(_redis!).Where(static kv => kv.Value is not null)
            .ToDictionary(static kv => kv.Key.Replace(":", "__", StringComparison.Ordinal), static kv => kv.Value!);
        var doomed = await RelayChildProcess.StartAsync(upstream.Url, environment);
        var killed = false;
        HttpResponseMessage? live = null;
        try
        {
            live = await _client.SendAsync(ResumeClient.Start(doomed.Url, Knobs(seed: 44, maxTokens: 400, tokensPerSecond: 10)), HttpCompletionOption.ResponseHeadersRead);
            var streamId = live.Headers.GetValues("Relay-Stream-Id").Single();
            await ResumeClient.ReadAsync(live, take: 2);
            using var followed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, followed.StatusCode);
            var reading = ResumeClient.ReadAsync(followed);
            killed = true;
            await doomed.DisposeAsync();
            var clock = Stopwatch.StartNew();

            var events = await reading.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(events.Count >= 3, $"{events.Count} events");
            Assert.Equal("relay_shutdown", events[^1].ErrorCode);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the follower ended {clock.Elapsed.TotalSeconds:F1} s after the kill");
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

        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished, TimeSpan.FromSeconds(60), poll: TimeSpan.FromMilliseconds(250));
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString());
        Assert.Equal(StallTokens, record.GetProperty("tokens_generated").GetInt32());
        Assert.Contains(relay.Logs.GetSnapshot(), static r => r.Id.Name == "StreamEnded" && r.Message.Contains("end Completed", StringComparison.Ordinal));

        // The stream ended in Redis with its last event, for the client to resume (its first events are trimmed by
        // Resume:MaxEvents: 100,000 events are more than a stream keeps).
        using var resumed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId!, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.True((await ResumeClient.ReadAsync(resumed))[^1].IsDone);
    }

    [RedisFact]
    public async Task Control_ClientThatStopsReading_APlainStreamOnTheSameRoute_IsCancelledAfterTheWriteStall_UpstreamToo()
    {
        await using var relay = await StartStallingRelayAsync();
        using var tcp = new System.Net.Sockets.TcpClient { ReceiveBufferSize = 4096 };
        var (requestId, streamId) = await StartStalledStreamAsync(tcp, relay, resumable: false);

        Assert.Null(streamId);
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished, TimeSpan.FromSeconds(60), poll: TimeSpan.FromMilliseconds(250));
        Assert.True(MockUpstreamFixture.IsAborted(record), record.ToString());
        Assert.Contains(relay.Logs.GetSnapshot(), static r => r.Id.Name == "StreamEnded" && r.Message.Contains("end WriteStallTimeout", StringComparison.Ordinal));
    }

    private const int StallTokens = 100_000;

    private Task<InProcessRelay> StartStallingRelayAsync()
    {
        var settings = ResumableStreamTests.ResumeSettings(_redis!);
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

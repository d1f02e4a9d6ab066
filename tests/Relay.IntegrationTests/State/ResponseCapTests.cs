using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests.State;

/// <summary>
/// <c>Resume:MaxResponseSeconds</c> at the HTTP level: each response of a resumable stream ends before the cap, between
/// two events, with a retry-only block; resuming continues the stream exactly; the resuming responses are capped too,
/// on an instance whose own route has no cap (the stream's record carries it). Relay A's route has a 1 s cap; B's none.
/// </summary>
public sealed class ResponseCapTests(MockUpstreamFixture upstream, Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    private static readonly TimeSpan Cap = TimeSpan.FromSeconds(1);

    /// <summary>How late a capped response may end, on a loaded machine; far below the stream's own length.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(700);

    private readonly HttpClient _client = new();
    private readonly ConcurrentQueue<StreamUsageRecord> _usage = new();
    private RedisProcess? _redis;
    private InProcessRelay _a = null!;
    private InProcessRelay _b = null!;

    public async Task InitializeAsync()
    {
        if (RedisProcess.Binary is null)
        {
            return;
        }

        _redis = await RedisProcess.StartAsync();
        _a = await InProcessRelay.StartAsync(upstream.Url, CappedSettings(_redis, Cap.TotalSeconds), services: s => s.AddSingleton<IStreamUsageSink>(new QueueSink(_usage)));
        _b = await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(_redis));

        // One short stream and its replay first: the first request compiles Relay's paths (JIT), which counts against a cap.
        using var warm = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(1, maxTokens: 3, tokensPerSecond: 0, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        await ResumeClient.ReadAsync(warm);
        using var replay = await _client.SendAsync(ResumeClient.Resume(_b.Url, warm.Headers.GetValues("Relay-Stream-Id").Single(), null), HttpCompletionOption.ResponseHeadersRead);
        await ResumeClient.ReadAsync(replay);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        if (_redis is not null)
        {
            await _a.DisposeAsync();
            await _b.DisposeAsync();
            await _redis.DisposeAsync();
        }
    }

    /// <summary>Resume on, with this cap (0: none) and a detached time of a second: a stream nobody resumes stops soon.</summary>
    internal static Dictionary<string, string?> CappedSettings(RedisProcess redis, double maxResponseSeconds, double detachedSeconds = 1)
    {
        var settings = ResumableStreamTests.ResumeSettings(redis, detachedSeconds);
        if (maxResponseSeconds > 0)
        {
            settings["Relay:Resume:MaxResponseSeconds"] = maxResponseSeconds.ToString(CultureInfo.InvariantCulture);
        }

        return settings;
    }

    /// <summary>The mock's knobs, with a key whose requests the mock counts (<c>/mock/fail-keys/{key}</c>).</summary>
    internal static Dictionary<string, string> Knobs(int seed, int maxTokens, int tokensPerSecond, string countKey) => new()
    {
        ["x-mock-seed"] = seed.ToString(CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = maxTokens.ToString(CultureInfo.InvariantCulture),
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture),
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-fail-key"] = countKey,
    };

    /// <summary>How many requests with <paramref name="countKey"/> reached the upstream.</summary>
    internal static async Task<int> UpstreamCallsAsync(MockUpstreamFixture upstream, string countKey)
        => JsonDocument.Parse(await upstream.Client.GetStringAsync($"{upstream.Url}/mock/fail-keys/{countKey}")).RootElement.GetProperty("requests").GetInt32();

    [RedisFact]
    public async Task ResponseOfAResumableStream_EndsAtTheCap_BetweenEvents_WithARetryOnlyBlockLast_AndNoDone()
    {
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(31, maxTokens: 100, tokensPerSecond: 25, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        // Read to its end: a chunked body cut before its last chunk would throw here instead.
        var read = await CappedRead.ReadAsync(response, clock);

        output.WriteLine($"the capped response ended after {read.Elapsed.TotalMilliseconds:F0} ms (cap {Cap.TotalMilliseconds:F0} ms), {read.Events.Count} events");
        Assert.InRange(read.Elapsed, Cap, Cap + Slack); // The stream lasts 4 s.
        Assert.True(response.Headers.ConnectionClose, "the continuation must come on a new connection");
        Assert.Equal("retry: 250", read.Blocks[^1]);
        var events = read.Events;
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.NotEqual("[DONE]", e.Data));
        Assert.All(events, e => JsonDocument.Parse(e.Data)); // Whole events only.
        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(e => e.Sequence));
        Assert.All(events, e => Assert.StartsWith(streamId + ":", e.Id));
    }

    [RedisFact]
    public async Task CappedStream_ResumedOnAnInstanceWithoutACap_ContinuesWithNoGapNoDuplicate_EveryResponseCapped_UpstreamCalledOnce()
    {
        var key = NewKey();
        var knobs = Knobs(33, maxTokens: 100, tokensPerSecond: 25, key); // About 4 s: four or five responses.
        var expected = await ResumeClient.MockTextAsync(_client, upstream.Url, knobs.Where(static k => k.Key != "x-mock-fail-key").ToDictionary());

        var clock = Stopwatch.StartNew();
        var first = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = first.Headers.GetValues("Relay-Stream-Id").Single();
        var requestId = first.Headers.GetValues("x-mock-request-id").Single();
        var reads = new List<CappedRead> { await CappedRead.ReadAsync(first, clock) };
        first.Dispose();
        while (reads[^1].Events is not [.., { Data: "[DONE]" }])
        {
            Assert.True(reads.Count < 20, "the stream never ended");
            clock.Restart();
            using var resumed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, reads.SelectMany(static r => r.Events).Last().Id), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            reads.Add(await CappedRead.ReadAsync(resumed, clock));
        }

        output.WriteLine($"{reads.Count} responses, each ended after (ms): {string.Join(", ", reads.Select(static r => r.Elapsed.TotalMilliseconds.ToString("F0", CultureInfo.InvariantCulture)))}");
        Assert.True(reads.Count >= 3, $"{reads.Count} responses");
        Assert.All(reads.SkipLast(1), r =>
        {
            Assert.Equal("retry: 250", r.Blocks[^1]);
            Assert.InRange(r.Elapsed, TimeSpan.Zero, Cap + Slack);
        });
        Assert.DoesNotContain(reads[^1].Blocks, static b => b.StartsWith("retry:", StringComparison.Ordinal));
        var events = reads.SelectMany(static r => r.Events).ToList();
        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(static e => e.Sequence)); // No gap, no duplicate.
        Assert.Equal(expected, string.Concat(events.Select(static e => e.Content)));

        Assert.Equal(1, await UpstreamCallsAsync(upstream, key));
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished);
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString()); // The readers kept it alive past DetachedSeconds (1 s).
        // The relay loop ran to its end behind the ended response: a completed record of all 100 tokens.
        await WaitAsync(() => _usage.FirstOrDefault(static u => u.EndReason == StreamEndReason.Completed && u.CompletionTokensGenerated == 100));
        Assert.DoesNotContain(_a.Logs.GetSnapshot(), static r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    [RedisFact]
    public async Task OverHttp2_ACappedResponseEndsItsStreamWithoutConnectionClose_AndTheStreamResumesWhole()
    {
        await using var h2 = await InProcessRelay.StartAsync(upstream.Url, CappedSettings(_redis!, Cap.TotalSeconds), h2c: true);
        using var client = new HttpClient();
        var key = NewKey();
        var clock = Stopwatch.StartNew();
        using var response = await client.SendAsync(Http2(ResumeClient.Start(h2.H2cUrl!, Knobs(41, maxTokens: 60, tokensPerSecond: 25, key))), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var first = await CappedRead.ReadAsync(response, clock); // END_STREAM: the read ends.
        Assert.Equal("retry: 250", first.Blocks[^1]);
        Assert.InRange(first.Elapsed, Cap, Cap + Slack);
        Assert.False(response.Headers.Contains("Connection"));

        var events = first.Events;
        while (events is not [.., { Data: "[DONE]" }])
        {
            clock.Restart();
            using var resumed = await client.SendAsync(Http2(ResumeClient.Resume(h2.H2cUrl!, streamId, events[^1].Id)), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpVersion.Version20, resumed.Version);
            events = [.. events, .. (await CappedRead.ReadAsync(resumed, clock)).Events];
        }

        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(static e => e.Sequence));
        Assert.Equal(1, await UpstreamCallsAsync(upstream, key));
    }

    [RedisFact]
    public async Task CappedResponse_AndNobodyResumes_GenerationStopsAfterDetachedSeconds()
    {
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(35, maxTokens: 2000, tokensPerSecond: 50, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        var read = await CappedRead.ReadAsync(response, clock);
        Assert.Equal("retry: 250", read.Blocks[^1]);

        await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted, timeout: TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed >= Cap + TimeSpan.FromSeconds(1), $"stopped after {clock.Elapsed}, before the cap and the detached time");
        var usage = await WaitAsync(() => _usage.FirstOrDefault(u => u.EndReason == StreamEndReason.DetachedTimeout));
        Assert.Equal(StreamEndReason.DetachedTimeout, usage.EndReason);
    }

    [RedisFact]
    public async Task Control_StreamShorterThanTheCap_IsOneResponseToDone_WithoutARetryBlock()
    {
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(37, maxTokens: 10, tokensPerSecond: 0, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var read = await CappedRead.ReadAsync(response, clock);
        Assert.Equal("[DONE]", read.Events[^1].Data);
        Assert.DoesNotContain(read.Blocks, static b => b.StartsWith("retry:", StringComparison.Ordinal));
        Assert.Equal(Enumerable.Range(1, read.Events.Count).Select(static i => (long)i), read.Events.Select(static e => e.Sequence));
    }

    [RedisFact]
    public async Task Control_NonResumableRequestOnTheCappedRoute_IsNotCapped()
    {
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(39, maxTokens: 50, tokensPerSecond: 25, NewKey()), resumable: false), HttpCompletionOption.ResponseHeadersRead);
        var read = await CappedRead.ReadAsync(response, clock);
        Assert.True(read.Elapsed > Cap + TimeSpan.FromMilliseconds(500), $"the stream lasted {read.Elapsed}: too short to show the cap does not apply");
        Assert.Equal("[DONE]", read.Events[^1].Data);
        Assert.DoesNotContain(read.Blocks, static b => b.StartsWith("retry:", StringComparison.Ordinal));
        Assert.NotEqual(true, response.Headers.ConnectionClose);
    }

    private static HttpRequestMessage Http2(HttpRequestMessage request)
    {
        request.Version = HttpVersion.Version20;
        request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        return request;
    }

    private static string NewKey() => "caps-" + Guid.NewGuid().ToString("N");

    private static async Task<T> WaitAsync<T>(Func<T?> probe)
        where T : class
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "timed out");
            await Task.Delay(10);
        }
    }
}

/// <summary>One response of a stream read to its end, raw: its blocks (without the blank lines), its events, how long it took.</summary>
internal sealed record CappedRead(List<string> Blocks, List<ResumedEvent> Events, TimeSpan Elapsed)
{
    public static async Task<CappedRead> ReadAsync(HttpResponseMessage response, Stopwatch clock)
    {
        var body = await response.Content.ReadAsStringAsync();
        var elapsed = clock.Elapsed;
        Assert.EndsWith("\n\n", body, StringComparison.Ordinal); // Never mid-event.
        var blocks = body[..^2].Split("\n\n").ToList();
        var events = blocks.Where(static b => b.StartsWith("data:", StringComparison.Ordinal))
            .Select(static b =>
            {
                var lines = b.Split('\n');
                var data = string.Join('\n', lines.Where(static l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(static l => l[6..]));
                return new ResumedEvent(lines.LastOrDefault(static l => l.StartsWith("id: ", StringComparison.Ordinal))?[4..], data);
            })
            .ToList();
        return new CappedRead(blocks, events, elapsed);
    }
}

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
public sealed class ResponseCapTests(MockUpstreamFixture upstream, SharedRelays shared, Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>, IClassFixture<SharedRelays>
{
    private static readonly TimeSpan Cap = TimeSpan.FromSeconds(1);

    private readonly HttpClient _client = new();

    /// <summary>A's usage records since this test began (A's sink writes to the queue of the test that runs).</summary>
    private readonly ConcurrentQueue<StreamUsageRecord> _usage = new();

    public async Task InitializeAsync()
    {
        if (RedisProcess.Binary is null)
        {
            return;
        }

        shared.CurrentUsage = _usage;
        await shared.StartOnceAsync(async redis => (
            await InProcessRelay.StartAsync(upstream.Url, CappedSettings(redis, Cap.TotalSeconds), services: s => s.AddSingleton<IStreamUsageSink>(new QueueSink(() => shared.CurrentUsage))),
            await InProcessRelay.StartAsync(upstream.Url, ResumableStreamTests.ResumeSettings(redis))));
    }

    public Task DisposeAsync()
    {
        _client.Dispose();
        return Task.CompletedTask;
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
        using var response = await _client.SendAsync(ResumeClient.Start(shared.A.Url, Knobs(31, maxTokens: 100, tokensPerSecond: 25, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        // Read to its end: a chunked body cut before its last chunk would throw here instead.
        var read = await CappedRead.ReadAsync(response);

        // When the cap ends a response is a timer in Relay, tested on a fake clock (Relay.Middleware.Tests,
        // Resume.ResponseCapTests); here, that the response of a 4 s stream ended before the stream did (no [DONE]),
        // between events, with the retry block last. How long it lasted is printed.
        output.WriteLine($"the capped response ended after {clock.Elapsed.TotalMilliseconds:F0} ms (cap {Cap.TotalMilliseconds:F0} ms), {read.Events.Count} events");
        Assert.True(response.Headers.ConnectionClose, "the continuation must come on a new connection");
        Assert.True(read.EndsWithRetryBlock, read.Body);
        var events = read.Events;
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.NotEqual("[DONE]", e.Data));
        Assert.All(events, e => JsonDocument.Parse(e.Data)); // Whole events only.
        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(e => e.Sequence));
        Assert.All(events, e => Assert.StartsWith(streamId + ":", e.Id));

        // Nothing left generating for the next test (its usage record would be the next test's): cancelled, unless its
        // detached time (1 s) stopped it first.
        using (await _client.SendAsync(ResumeClient.Cancel(shared.B.Url, streamId)))
        {
        }

        await WaitAsync(() => _usage.FirstOrDefault(static u => u.EndReason is StreamEndReason.CancelledByRequest or StreamEndReason.DetachedTimeout));
    }

    [RedisFact]
    public async Task CappedStream_ResumedOnAnInstanceWithoutACap_ContinuesWithNoGapNoDuplicate_EveryResponseCapped_UpstreamCalledOnce()
    {
        var key = NewKey();
        var knobs = Knobs(33, maxTokens: 100, tokensPerSecond: 25, key); // About 4 s: four or five responses.
        var expected = await ResumeClient.MockTextAsync(_client, upstream.Url, knobs.Where(static k => k.Key != "x-mock-fail-key").ToDictionary());

        var clock = Stopwatch.StartNew();
        var first = await _client.SendAsync(ResumeClient.Start(shared.A.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = first.Headers.GetValues("Relay-Stream-Id").Single();
        var requestId = first.Headers.GetValues("x-mock-request-id").Single();
        var reads = new List<CappedRead> { await CappedRead.ReadAsync(first) };
        var lasted = new List<double> { clock.Elapsed.TotalMilliseconds };
        first.Dispose();
        while (reads[^1].Events is not [.., { Data: "[DONE]" }])
        {
            Assert.True(reads.Count < 20, "the stream never ended");
            clock.Restart();
            using var resumed = await _client.SendAsync(ResumeClient.Resume(shared.B.Url, streamId, reads.SelectMany(static r => r.Events).Last().Id), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
            reads.Add(await CappedRead.ReadAsync(resumed));
            lasted.Add(clock.Elapsed.TotalMilliseconds);
        }

        output.WriteLine($"{reads.Count} responses, each ended after (ms): {string.Join(", ", lasted.Select(static t => t.ToString("F0", CultureInfo.InvariantCulture)))}");
        Assert.True(reads.Count >= 3, $"{reads.Count} responses");
        // Every response but the last ended before the stream did, at the cap: B's, too, whose own route has none.
        Assert.All(reads.SkipLast(1), static r => Assert.True(r.EndsWithRetryBlock, r.Body));
        Assert.False(reads[^1].HasRetryBlock, reads[^1].Body);
        var events = reads.SelectMany(static r => r.Events).ToList();
        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(static e => e.Sequence)); // No gap, no duplicate.
        Assert.Equal(expected, string.Concat(events.Select(static e => e.Content)));

        Assert.Equal(1, await UpstreamCallsAsync(upstream, key));
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished);
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString()); // The readers kept it alive past DetachedSeconds (1 s).
        // The relay loop ran to its end behind the ended response: a completed record of all 100 tokens.
        await WaitAsync(() => _usage.FirstOrDefault(static u => u.EndReason == StreamEndReason.Completed && u.CompletionTokensGenerated == 100));
        Assert.DoesNotContain(shared.A.Logs.GetSnapshot(), static r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    [RedisFact]
    public async Task OverHttp2_ACappedResponseEndsItsStreamWithoutConnectionClose_AndTheStreamResumesWhole()
    {
        await using var h2 = await InProcessRelay.StartAsync(upstream.Url, CappedSettings(shared.Redis, Cap.TotalSeconds), h2c: true);
        using var client = new HttpClient();
        var key = NewKey();
        using var response = await client.SendAsync(Http2(ResumeClient.Start(h2.H2cUrl!, Knobs(41, maxTokens: 60, tokensPerSecond: 25, key))), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var first = await CappedRead.ReadAsync(response); // END_STREAM: the read ends.
        Assert.True(first.EndsWithRetryBlock, first.Body); // Ended at the cap, before the stream's end.
        Assert.False(response.Headers.Contains("Connection"));

        var events = first.Events;
        while (events is not [.., { Data: "[DONE]" }])
        {
            using var resumed = await client.SendAsync(Http2(ResumeClient.Resume(h2.H2cUrl!, streamId, events[^1].Id)), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpVersion.Version20, resumed.Version);
            events = [.. events, .. (await CappedRead.ReadAsync(resumed)).Events];
        }

        Assert.Equal(Enumerable.Range(1, events.Count).Select(static i => (long)i), events.Select(static e => e.Sequence));
        Assert.Equal(1, await UpstreamCallsAsync(upstream, key));
    }

    [RedisFact]
    public async Task CappedResponse_AndNobodyResumes_GenerationStopsAfterDetachedSeconds()
    {
        using var response = await _client.SendAsync(ResumeClient.Start(shared.A.Url, Knobs(35, maxTokens: 2000, tokensPerSecond: 50, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        var read = await CappedRead.ReadAsync(response);
        var endedUs = SseRead.NowUs(); // The mock's clock (it runs in this process).
        Assert.True(read.EndsWithRetryBlock, read.Body);

        // Generation went on after the capped response ended, then stopped with no reader: the order of the mock's
        // own records. The detached time is a timer in Relay, tested on a fake clock (DetachedTimeTests).
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
        Assert.Contains(record.GetProperty("token_emit_us").EnumerateArray(), t => t.GetInt64() > endedUs);
        Assert.True(record.GetProperty("aborted_us").GetInt64() > endedUs, record.ToString());
        var usage = await WaitAsync(() => _usage.FirstOrDefault(u => u.EndReason == StreamEndReason.DetachedTimeout));
        Assert.Equal(StreamEndReason.DetachedTimeout, usage.EndReason);
    }

    [RedisFact]
    public async Task Control_StreamShorterThanTheCap_IsOneResponseToDone_WithoutARetryBlock()
    {
        using var response = await _client.SendAsync(ResumeClient.Start(shared.A.Url, Knobs(37, maxTokens: 10, tokensPerSecond: 0, NewKey())), HttpCompletionOption.ResponseHeadersRead);
        var read = await CappedRead.ReadAsync(response);
        Assert.Equal("[DONE]", read.Events[^1].Data);
        Assert.False(read.HasRetryBlock, read.Body);
        Assert.Equal(Enumerable.Range(1, read.Events.Count).Select(static i => (long)i), read.Events.Select(static e => e.Sequence));
    }

    [RedisFact]
    public async Task Control_NonResumableRequestOnTheCappedRoute_IsNotCapped()
    {
        using var response = await _client.SendAsync(ResumeClient.Start(shared.A.Url, Knobs(39, maxTokens: 50, tokensPerSecond: 25, NewKey()), resumable: false), HttpCompletionOption.ResponseHeadersRead);
        var read = await CappedRead.ReadAsync(response);
        Assert.Equal("[DONE]", read.Events[^1].Data);
        Assert.False(read.HasRetryBlock, read.Body);
        // One response outlasted the cap: by the mock's own pacing (49 intervals of 40 ms), which never emits early.
        var record = await upstream.WaitForRecordAsync(response.Headers.GetValues("x-mock-request-id").Single(), MockUpstreamFixture.IsFinished);
        var emitted = record.GetProperty("token_emit_us").EnumerateArray().Select(static t => t.GetInt64()).ToList();
        Assert.True(TimeSpan.FromMicroseconds(emitted[^1] - emitted[0]) > Cap, $"the stream lasted {(emitted[^1] - emitted[0]) / 1000} ms: too short to show the cap does not apply");
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

            Assert.True(clock.Elapsed < Deadline.Default, "timed out");
            await Task.Delay(10);
        }
    }
}

/// <summary>
/// One response of a stream read to its end: its body as sent (what a parser hides: where it ends, a retry-only block)
/// and its events, parsed by the test projects' one SSE client.
/// </summary>
internal sealed record CappedRead(string Body, List<ResumedEvent> Events)
{
    /// <summary>The body ends with a block that has only the retry field, after the last event.</summary>
    public bool EndsWithRetryBlock => Body == "retry: 250\n\n" || Body.EndsWith("\n\nretry: 250\n\n", StringComparison.Ordinal);

    public bool HasRetryBlock => Body.StartsWith("retry:", StringComparison.Ordinal) || Body.Contains("\nretry:", StringComparison.Ordinal);

    public static async Task<CappedRead> ReadAsync(HttpResponseMessage response)
    {
        var bytes = await response.Content.ReadAsByteArrayAsync();
        var body = System.Text.Encoding.UTF8.GetString(bytes);
        Assert.EndsWith("\n\n", body, StringComparison.Ordinal); // Never mid-event.
        var received = await Relay.Tests.Shared.SseTestReader.ReadAllAsync(new MemoryStream(bytes));
        var events = received.Where(static r => r.Comment is null).Select(static r => new ResumedEvent(r.EventId, System.Text.Encoding.UTF8.GetString(r.Data))).ToList();
        return new CappedRead(body, events);
    }
}

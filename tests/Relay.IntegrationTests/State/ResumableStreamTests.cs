using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests.State;

/// <summary>Resumable streams across two Relay instances (real Kestrel sockets) sharing one redis-server.</summary>
public sealed class ResumableStreamTests(MockUpstreamFixture upstream, Xunit.Abstractions.ITestOutputHelper output) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    private readonly HttpClient _client = new();
    private readonly ConcurrentQueue<StreamUsageRecord> _usageA = new();
    private readonly ConcurrentQueue<StreamUsageRecord> _usageB = new();
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
        _a = await StartRelayAsync(_redis, _usageA);
        _b = await StartRelayAsync(_redis, _usageB);
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

    internal static Dictionary<string, string?> ResumeSettings(RedisProcess redis, double detachedSeconds = 30)
    {
        var settings = SharedStateSettings.For(redis.ConnectionString);
        settings["Relay:Resume:Enabled"] = "true";
        settings["Relay:Resume:DetachedSeconds"] = detachedSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    private Task<InProcessRelay> StartRelayAsync(RedisProcess redis, ConcurrentQueue<StreamUsageRecord> usage, double detachedSeconds = 30)
        => InProcessRelay.StartAsync(upstream.Url, ResumeSettings(redis, detachedSeconds), services: s => s.AddSingleton<IStreamUsageSink>(new QueueSink(usage)));

    private static Dictionary<string, string> Knobs(int seed, int maxTokens, int tokensPerSecond) => new()
    {
        ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-ttft-ms"] = "0",
    };

    [RedisFact]
    public async Task ResumableStream_EveryEventHasAnIdInOrder_TheHeaderNamesTheStream_AndTheOptionIsNotForwarded()
    {
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(seed: 3, maxTokens: 20, tokensPerSecond: 0)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var events = await ResumeClient.ReadAsync(response);
        Assert.True(events[^1].IsDone);
        Assert.All(events, e => Assert.StartsWith(streamId + ":", e.Id));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Sequence));

        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.DoesNotContain("resumable", record.GetProperty("request_body").GetString());
    }

    [RedisFact]
    public async Task Control_NotResumable_NoIdsNoHeader_AndAClientThatLeaves_StopsTheUpstreamAtOnce()
    {
        using (var plain = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(3, 20, 0), resumable: false), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.False(plain.Headers.Contains("Relay-Stream-Id"));
            Assert.All(await ResumeClient.ReadAsync(plain), e => Assert.True(string.IsNullOrEmpty(e.Id)));
        }

        var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(5, 400, 20), resumable: false), HttpCompletionOption.ResponseHeadersRead);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        await ResumeClient.ReadAsync(response, take: 2);
        response.Dispose();
        await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
    }

    [RedisFact]
    public async Task ClientCutMidStreamOnA_ResumesThroughB_WithLastEventId_TextIsTheMocksExactly_CountedOnce()
    {
        var knobs = Knobs(seed: 21, maxTokens: 80, tokensPerSecond: 50);
        var expected = await DirectTextAsync(knobs);

        var response = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        var before = await ResumeClient.ReadAsync(response, take: 4);
        response.Dispose(); // The client's connection is cut.

        using var resumed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, before[^1].Id), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var after = await ResumeClient.ReadAsync(resumed);

        Assert.True(after[^1].IsDone);
        Assert.Equal(expected, ResumeClient.Text(before) + ResumeClient.Text(after));
        Assert.Equal(Enumerable.Range(1, before.Count + after.Count).Select(i => (long)i), before.Concat(after).Select(e => e.Sequence)); // No gap, no duplicate.
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsFinished);
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString()); // Generation went on without the client.

        // The tokens were generated once, by A, however often the stream was read.
        var usage = await WaitAsync(() => _usageA.IsEmpty ? null : _usageA.ToArray());
        Assert.Equal(80, Assert.Single(usage).CompletionTokensGenerated);
        Assert.Empty(_usageB);

        // A finished stream still replays, from the start, within its retention.
        using var again = await _client.SendAsync(ResumeClient.Resume(_a.Url, streamId, lastEventId: null), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(expected, ResumeClient.Text(await ResumeClient.ReadAsync(again)));
    }

    [RedisFact]
    public async Task Resume_WithAnotherCredential_Gets401_AndAnUnknownStream404()
    {
        using var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(3, 5, 0)), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        await ResumeClient.ReadAsync(response);

        await ErrorTests.AssertErrorAsync(await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, null, key: "rk-someone-else")), 401, "authentication_error", "invalid_api_key");
        await ErrorTests.AssertErrorAsync(await _client.SendAsync(ResumeClient.Resume(_b.Url, "rs_AAAAAAAAAAAAAAAAAAAAAA", null)), 404, "invalid_request_error", "stream_not_found");
    }

    [RedisFact]
    public async Task CancelSentToB_StopsTheUpstreamThatARelays_AndEveryReaderEndsWithTheFinalEvent()
    {
        var response = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(seed: 8, maxTokens: 2000, tokensPerSecond: 50)), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        var readingA = ResumeClient.ReadAsync(response);
        using var follower = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, $"{streamId}:1"), HttpCompletionOption.ResponseHeadersRead);
        var readingB = ResumeClient.ReadAsync(follower);
        await upstream.WaitForRecordAsync(requestId, r => r.TryGetProperty("tokens_generated", out var t) && t.GetInt32() >= 5);

        var sentUs = SseRead.NowUs(); // The mock's clock (it runs in this process).
        using (var cancel = await _client.SendAsync(ResumeClient.Cancel(_b.Url, streamId)))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        // The upstream saw A let go, well before its 40 s of generation: the cancel crossed instances. How soon is a
        // figure (ResumeFigures), not asserted here.
        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
        var abortedUs = record.GetProperty("aborted_us").GetInt64();
        var emittedAfter = record.GetProperty("token_emit_us").EnumerateArray().Count(t => t.GetInt64() > sentUs);
        output.WriteLine($"the upstream saw the abort {(abortedUs - sentUs) / 1000.0:F1} ms after the cancel was sent, {emittedAfter} tokens later");
        Assert.True(record.GetProperty("tokens_generated").GetInt32() < 2000, record.ToString());

        var onA = await readingA.WaitAsync(Deadline.Default);
        var onB = await readingB.WaitAsync(Deadline.Default);
        Assert.Equal("stream_cancelled", onA[^1].ErrorCode);
        Assert.Equal("stream_cancelled", onB[^1].ErrorCode);
        Assert.Equal(onA[^1].Id, onB[^1].Id);
        response.Dispose();

        var usage = await WaitAsync(() => _usageA.IsEmpty ? null : _usageA.ToArray());
        Assert.Equal(StreamEndReason.CancelledByRequest, Assert.Single(usage).EndReason);
    }

    [RedisFact]
    public async Task ClientGone_AndNoReader_GenerationStopsAfterDetachedSeconds_AndTheUsageRecordSaysSo()
    {
        var usage = new ConcurrentQueue<StreamUsageRecord>();
        await using var relay = await StartRelayAsync(_redis!, usage, detachedSeconds: 0.5);
        var response = await _client.SendAsync(ResumeClient.Start(relay.Url, Knobs(seed: 9, maxTokens: 2000, tokensPerSecond: 50)), HttpCompletionOption.ResponseHeadersRead);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        await ResumeClient.ReadAsync(response, take: 2);
        response.Dispose();

        // The detached time itself is a timer in Relay, tested on a fake clock (Relay.Middleware.Tests, DetachedTimeTests):
        // here, that generation stops with no reader, and why.
        await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
        var record = Assert.Single(await WaitAsync(() => usage.IsEmpty ? null : usage.ToArray()));
        Assert.Equal(StreamEndReason.DetachedTimeout, record.EndReason);
    }

    [RedisFact]
    public async Task TicketStartedStream_EventSourceReconnectingToTheTicketUrl_WithLastEventId_ResumesOnAnotherInstance()
    {
        using var issue = new HttpRequestMessage(HttpMethod.Post, _a.Url + "/relay/v1/tickets")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = "mock", stream = true, stream_options = new { resumable = true }, messages = new[] { new { role = "user", content = "Hi" } } }),
        };
        issue.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        foreach (var (name, value) in Knobs(seed: 13, maxTokens: 60, tokensPerSecond: 50))
        {
            issue.Headers.TryAddWithoutValidation(name, value);
        }

        using var issued = await _client.SendAsync(issue);
        var url = System.Text.Json.JsonDocument.Parse(await issued.Content.ReadAsStringAsync()).RootElement.GetProperty("url").GetString()!;
        var response = await _client.GetAsync(_a.Url + url, HttpCompletionOption.ResponseHeadersRead);
        var before = await ResumeClient.ReadAsync(response, take: 3);
        response.Dispose();

        // What EventSource does by itself: the same URL, no Authorization, the last event id.
        using var reconnect = new HttpRequestMessage(HttpMethod.Get, _b.Url + url);
        reconnect.Headers.TryAddWithoutValidation("Last-Event-ID", before[^1].Id);
        using var resumed = await _client.SendAsync(reconnect, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        var after = await ResumeClient.ReadAsync(resumed);
        Assert.True(after[^1].IsDone);
        Assert.Equal(await DirectTextAsync(Knobs(13, 60, 0)), ResumeClient.Text(before) + ResumeClient.Text(after));

        // Control: the same URL without Last-Event-ID is a second redemption.
        await ErrorTests.AssertErrorAsync(await _client.GetAsync(_b.Url + url), 410, "invalid_request_error", "ticket_used");
    }

    [RedisFact]
    public async Task RedisRestarted_ResumableRequestsStreamMeanwhile_AndStreamsStartedAfterItIsBack_Resume()
    {
        await _redis!.StopAsync();
        using (var meanwhile = await _client.SendAsync(ResumeClient.Start(_a.Url, Knobs(3, 10, 0)), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, meanwhile.StatusCode);
            Assert.False(meanwhile.Headers.Contains("Relay-Stream-Id")); // Not resumable while Redis is away, but served.
            Assert.True((await ResumeClient.ReadAsync(meanwhile))[^1].IsDone);
        }

        await _redis.StartAgainAsync();
        var knobs = Knobs(seed: 17, maxTokens: 60, tokensPerSecond: 50);
        var clock = Stopwatch.StartNew();
        HttpResponseMessage response;
        while (true)
        {
            // Both instances reconnect by themselves; a bounded poll of their state, not a sleep.
            response = await _client.SendAsync(ResumeClient.Start(_a.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
            using var probe = await _client.SendAsync(ResumeClient.Resume(_b.Url, "rs_AAAAAAAAAAAAAAAAAAAAAA", null));
            if (response.Headers.Contains("Relay-Stream-Id") && probe.StatusCode == HttpStatusCode.NotFound)
            {
                break;
            }

            response.Dispose();
            Assert.True(clock.Elapsed < Deadline.Default, $"the instances did not reconnect to Redis in {Deadline.Default}");
            await Task.Delay(50);
        }

        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var before = await ResumeClient.ReadAsync(response, take: 3);
        response.Dispose();
        using var resumed = await _client.SendAsync(ResumeClient.Resume(_b.Url, streamId, before[^1].Id), HttpCompletionOption.ResponseHeadersRead);
        var after = await ResumeClient.ReadAsync(resumed);
        Assert.Equal(await DirectTextAsync(knobs), ResumeClient.Text(before) + ResumeClient.Text(after));
    }

    private Task<string> DirectTextAsync(Dictionary<string, string> knobs) => ResumeClient.MockTextAsync(_client, upstream.Url, knobs);

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

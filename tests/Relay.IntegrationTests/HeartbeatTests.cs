using System.Net;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Heartbeats keep a silent stream open through an idle timeout (a real nginx whose proxy_read_timeout is
/// shorter than the upstream's pause), and optionally start before the upstream's first byte.
/// </summary>
public sealed class HeartbeatTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    // nginx cuts an upstream (Relay) that sends nothing for 2 s; the simulated model pauses 5 s mid-stream.
    private const string ShortReadTimeout = "proxy_read_timeout 2s;";

    private static readonly Dictionary<string, string> Stall = new()
    {
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-max-tokens"] = "12",
        ["x-mock-stall-after-tokens"] = "4",
        ["x-mock-stall-ms"] = "5000",
    };

    [NginxFact]
    public async Task Heartbeats_KeepTheStreamOpen_ThroughAnIdleTimeoutShorterThanTheUpstreamsPause()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Heartbeat:IntervalSeconds"] = "1" });
        await using var nginx = await NginxProcess.StartAsync(relay.Url, ShortReadTimeout);
        var events = await StreamAsync(nginx.Url, Stall);

        Assert.True(events[^1].IsDone, $"the stream must survive the pause; nginx: {nginx.ErrorLog()}");
        // nginx cuts after 2 s of silence, so surviving the 5 s pause took at least two heartbeats through it. Their
        // spacing (one after each interval of silence, not before) is the relay loop's rule, tested on a fake clock in
        // Relay.Middleware.Tests' Streaming/HeartbeatTests; a wall-clock gap here would only measure the machine's load.
        var pause = events.Where(e => e.Comment == "keep-alive").ToList();
        Assert.True(pause.Count >= 2, $"expected heartbeats through the 5 s pause, got {pause.Count}");
    }

    [NginxFact]
    public async Task Control_WithoutHeartbeats_NginxCutsTheSilentStream()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Heartbeat:IntervalSeconds"] = "0" });
        await using var nginx = await NginxProcess.StartAsync(relay.Url, ShortReadTimeout);
        var events = await StreamAsync(nginx.Url, Stall);

        Assert.DoesNotContain(events, e => e.IsDone);
        Assert.DoesNotContain(events, e => e.Comment == "keep-alive");
        Assert.Contains("upstream timed out", nginx.ErrorLog());
    }

    [Fact]
    public async Task Heartbeats_AreNotUpstreamActivity_TheIdleTimeoutStillFires()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Heartbeat:IntervalSeconds"] = "0.5",
            ["Relay:Timeouts:IdleSeconds"] = "2",
        });
        var events = await StreamAsync(relay.Url, Stall);
        Assert.Contains(events, e => e.Comment == "keep-alive");
        Assert.Equal("idle_timeout", events[^1].Json.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task BeforeFirstByte_SendsHeadersAndHeartbeatsDuringALongTimeToFirstToken()
    {
        // The upstream holds its first byte (even its response head) until the client has its 200 and three heartbeats.
        await using var held = await GatedChatUpstream.StartAsync(before: 0, after: 5);
        await using var relay = await InProcessRelay.StartAsync(held.Url, new Dictionary<string, string?>
        {
            ["Relay:Heartbeat:IntervalSeconds"] = "0.5",
            ["Relay:Heartbeat:BeforeFirstByte"] = "true",
        });
        using var deadline = new CancellationTokenSource(Deadline.Default);
        using var response = await Client.SendAsync(SseRead.ChatRequest(relay.Url), HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(held.OpenedByClient.IsCompleted, "the 200 came only after the upstream's first byte");
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
        // While the upstream holds, only heartbeats can arrive: read three of them byte by byte (SseRead's parser does
        // not surface comments one at a time), then let the upstream go on and read the rest as events.
        await using var body = await response.Content.ReadAsStreamAsync(deadline.Token);
        var early = new List<byte>();
        var one = new byte[1];
        while (System.Text.Encoding.UTF8.GetString([.. early]).Split(": keep-alive\n\n").Length <= 3)
        {
            Assert.Equal(1, await body.ReadAsync(one, deadline.Token));
            early.Add(one[0]);
        }

        Assert.Equal(string.Concat(Enumerable.Repeat(": keep-alive\n\n", 3)), System.Text.Encoding.UTF8.GetString([.. early]));
        held.Open();
        var events = (await Relay.Tests.Shared.SseTestReader.ReadAllAsync(body, cancellationToken: deadline.Token))
            .ConvertAll(static r => new ReceivedEvent(System.Text.Encoding.UTF8.GetString(r.Data), r.ReceivedUs, r.Comment));
        Assert.Equal("token0 token1 token2 token3 token4 ", string.Concat(events.Select(static e => e.Content)));
        Assert.True(events[^1].IsDone);
    }

    [Fact]
    public async Task BeforeFirstByte_AnErrorAfterTheEarly200_IsAFinalSseErrorEvent()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Heartbeat:IntervalSeconds"] = "0.5",
            ["Relay:Heartbeat:BeforeFirstByte"] = "true",
        });
        using var response = await Send(relay.Url, new() { ["x-mock-ttft-ms"] = "5000", ["Relay-Timeout"] = "first-token=2" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.Contains(events, e => e.Comment == "keep-alive");
        var error = events[^1].Json.GetProperty("error");
        Assert.Equal("timeout", error.GetProperty("type").GetString());
        Assert.Equal("first_token_timeout", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task BeforeFirstByte_AnUpstreamThatAnswersAtOnce_KeepsItsOwnStatus()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Heartbeat:IntervalSeconds"] = "1",
            ["Relay:Heartbeat:BeforeFirstByte"] = "true",
        });
        using var response = await Send(relay.Url, new() { ["x-mock-status"] = "429" });
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
    }

    private static readonly HttpClient Client = new();

    private static Task<HttpResponseMessage> Send(string url, Dictionary<string, string> headers)
        => Client.SendAsync(SseRead.ChatRequest(url, headers: headers), HttpCompletionOption.ResponseHeadersRead);

    private static async Task<List<ReceivedEvent>> StreamAsync(string url, Dictionary<string, string> headers)
    {
        using var response = await Send(url, headers);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await SseRead.ReadAllAsync(response);
    }
}

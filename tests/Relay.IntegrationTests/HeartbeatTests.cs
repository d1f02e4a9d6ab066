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
        var pause = events.Where(e => e.Comment == "keep-alive").ToList();
        Assert.True(pause.Count >= 3, $"expected a heartbeat about every second of the 5 s pause, got {pause.Count}");
        // Heartbeats arrive spaced by the interval, not in a burst: none closer than half an interval, and none later
        // than nginx's 2 s read timeout (the stream survived). A loaded machine may delay one (1.86 s seen in a CI run).
        var gaps = pause.Zip(pause.Skip(1), (a, b) => (b.ReceivedUs - a.ReceivedUs) / 1000).ToList();
        Assert.All(gaps, g => Assert.InRange(g, 500, 2000));
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
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Heartbeat:IntervalSeconds"] = "0.5",
            ["Relay:Heartbeat:BeforeFirstByte"] = "true",
        });
        var started = SseRead.NowUs();
        using var response = await Send(relay.Url, new() { ["x-mock-ttft-ms"] = "2500", ["x-mock-max-tokens"] = "5", ["x-mock-tokens-per-second"] = "0" });
        var headersMs = (SseRead.NowUs() - started) / 1000;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(headersMs < 1500, $"the 200 came only after {headersMs} ms");
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events.TakeWhile(e => e.Content.Length == 0).Count(e => e.Comment == "keep-alive") >= 3);
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

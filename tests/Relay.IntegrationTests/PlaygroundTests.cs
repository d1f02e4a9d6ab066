using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests;

/// <summary>
/// The playground page in a real headless Chromium: text appears incrementally with EventSource + ticket
/// and with fetch, Stop aborts the upstream, a reused ticket fails. Also the page's availability and CORS.
/// </summary>
public sealed class PlaygroundTests(MockUpstreamFixture upstream)
    : RelayTestBase(upstream, new Dictionary<string, string?>
    {
        ["Relay:Playground:Enabled"] = "true",
        ["Relay:Cors:AllowedOrigins:0"] = "https://app.example",
    })
{
    private readonly TimedUsageSink _usage = new();

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IStreamUsageSink>(_usage);

    [BrowserFact]
    public async Task EventSourceWithTicket_ShowsTheReplyIncrementally_AndTheTicketCannotBeReused()
    {
        var result = await BrowserDriver.RunAsync(Relay.Url, "stream", "eventsource");
        await AssertStreamedIncrementallyAsync(result);
        var reuse = result.GetProperty("reuse");
        Assert.Equal(410, reuse.GetProperty("status").GetInt32());
        Assert.Equal("ticket_used", JsonDocument.Parse(reuse.GetProperty("body").GetString()!).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [BrowserFact]
    public async Task Fetch_ShowsTheReplyIncrementally()
    {
        await AssertStreamedIncrementallyAsync(await BrowserDriver.RunAsync(Relay.Url, "stream", "fetch"));
    }

    [BrowserFact]
    public async Task Stop_AbortsTheUpstream()
    {
        var result = await BrowserDriver.RunAsync(Relay.Url, "stop", "fetch");
        Assert.Equal("stopped", result.GetProperty("status").GetString());
        var record = await Upstream.WaitForRecordAsync(result.GetProperty("requestId").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        // The upstream stopped generating before the end of its reply (at least 200 tokens) and generated nothing after.
        Assert.True(record.GetProperty("tokens_at_abort").GetInt32() < 200, record.ToString());
        Assert.Equal(record.GetProperty("tokens_at_abort").GetInt32(), record.GetProperty("tokens_generated").GetInt32());
    }

    [BrowserFact]
    public async Task WebSocket_ShowsTheReplyIncrementally()
    {
        var result = await BrowserDriver.RunAsync(Relay.Url, "stream", "websocket");
        await AssertStreamedIncrementallyAsync(result);
        Assert.Equal("completed", result.GetProperty("responses")[0].GetProperty("status").GetString());
    }

    [BrowserFact]
    public async Task WebSocket_Interrupt_CutsTheUpstreamAndContinuesFromTheDeliveredText()
    {
        var result = await BrowserDriver.RunAsync(Relay.Url, "interrupt", "websocket");
        Assert.Equal("done", result.GetProperty("status").GetString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());
        var responses = result.GetProperty("responses");
        Assert.Equal(2, responses.GetArrayLength());
        var first = responses[0];
        Assert.Equal("interrupted", first.GetProperty("status").GetString());
        Assert.Equal("completed", responses[1].GetProperty("status").GetString());
        Assert.Contains("[interrupted]", result.GetProperty("text").GetString(), StringComparison.Ordinal);

        // The interrupted generation stopped upstream, well before its 200 tokens.
        var aborted = await Upstream.WaitForRecordAsync(first.GetProperty("requestId").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.True(aborted.GetProperty("tokens_at_abort").GetInt32() < 150, aborted.ToString());

        // The new request continues the conversation: the question, the partial reply as shown, the interruption.
        var next = await Upstream.RecordAsync(responses[1].GetProperty("requestId").GetString()!);
        var messages = JsonDocument.Parse(next.GetProperty("request_body").GetString()!).RootElement.GetProperty("messages");
        Assert.Equal(3, messages.GetArrayLength());
        Assert.Equal(first.GetProperty("text").GetString(), messages[1].GetProperty("content").GetString());
        Assert.Equal("Stop. Tell me about cats instead.", messages[2].GetProperty("content").GetString());
    }

    [BrowserFact]
    public async Task WebSocket_Stop_CancelsTheUpstream()
    {
        var result = await BrowserDriver.RunAsync(Relay.Url, "stop", "websocket");
        Assert.Equal("stopped", result.GetProperty("status").GetString());
        var record = await Upstream.WaitForRecordAsync(result.GetProperty("requestId").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.True(record.GetProperty("tokens_at_abort").GetInt32() < 150, record.ToString());
    }

    [Fact]
    public async Task Playground_IsServed_WhenEnabled_AndNotOtherwise()
    {
        using var page = await Client.GetAsync(Relay.Url + "/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("EventSource", html);
        Assert.Contains("function startWebSocket()", html);

        // In front of a configured upstream the default is off.
        await using var plain = await InProcessRelay.StartAsync(Upstream.Url);
        await ErrorTests.AssertErrorAsync(await Client.GetAsync(plain.Url + "/"), 404, "invalid_request_error", "unknown_route");
    }

    [Fact]
    public async Task Cors_PreflightAndResponse_ForAnAllowedOrigin_NotForOthers()
    {
        using var preflight = new HttpRequestMessage(HttpMethod.Options, Relay.Url + "/relay/v1/tickets");
        preflight.Headers.Add("Origin", "https://app.example");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization,content-type");
        using var answer = await Client.SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal("https://app.example", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("authorization", answer.Headers.GetValues("Access-Control-Allow-Headers").Single(), StringComparison.OrdinalIgnoreCase);

        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string> { ["Origin"] = "https://app.example", ["x-mock-max-tokens"] = "3" });
        using var response = await Client.SendAsync(request);
        Assert.Equal("https://app.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());

        // Control: another origin, and a Relay with CORS off (the default), get no CORS headers.
        using var other = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string> { ["Origin"] = "https://evil.example", ["x-mock-max-tokens"] = "3" });
        Assert.False((await Client.SendAsync(other)).Headers.Contains("Access-Control-Allow-Origin"));
        await using var plain = await InProcessRelay.StartAsync(Upstream.Url);
        using var offRequest = SseRead.ChatRequest(plain.Url, headers: new Dictionary<string, string> { ["Origin"] = "https://app.example", ["x-mock-max-tokens"] = "3" });
        Assert.False((await Client.SendAsync(offRequest)).Headers.Contains("Access-Control-Allow-Origin"));
    }

    /// <summary>
    /// The page showed the reply as it streamed: many updates of the text, the first of them and the one that made
    /// half the text before Relay ended the stream. An order of events on one clock (the page's times moved to the
    /// machine's monotonic clock by the driver, the stream's end noted by the usage sink), not a bound on time: a
    /// stream held back anywhere between Relay and the page would show its first text only after Relay ended it.
    /// </summary>
    private async Task AssertStreamedIncrementallyAsync(JsonElement result)
    {
        Assert.Equal("done", result.GetProperty("status").GetString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());
        var text = result.GetProperty("text").GetString()!;
        Assert.True(text.Length > 300, text);
        Assert.EndsWith("ms", result.GetProperty("ttft").GetString());
        Assert.True(int.TryParse(result.GetProperty("tps").GetString(), out var tps) && tps > 0, result.GetProperty("tps").GetString());

        var (record, endedUs) = await _usage.FirstAsync(static r => r.EndReason == StreamEndReason.Completed);
        var updates = PageUpdates(result, "updates", static u => u.GetProperty("length").GetInt32());
        AssertOnOneClock(updates, record, endedUs);
        Assert.True(updates.Count > 50, $"only {updates.Count} DOM updates");
        var halfText = updates.First(u => u.Value >= text.Length / 2);
        Assert.True(updates[0].Us < endedUs, $"the first text appeared {(updates[0].Us - endedUs) / 1000} ms after Relay ended the stream");
        Assert.True(halfText.Us < endedUs, $"half of the text appeared only {(halfText.Us - endedUs) / 1000} ms after Relay ended the stream");
    }

    /// <summary>
    /// The two clocks line up: the page cannot show text before Relay started the stream (a check of the driver's clock
    /// offset; without it a wrong offset could pass every order above).
    /// </summary>
    internal static void AssertOnOneClock(List<(long Us, int Value)> updates, StreamUsageRecord record, long endedUs)
        => Assert.True(updates[0].Us > endedUs - (long)record.Duration.TotalMicroseconds, $"the page's first update is {(endedUs - (long)record.Duration.TotalMicroseconds - updates[0].Us) / 1000} ms before the stream began: the page's clock is not on the monotonic clock");

    /// <summary>The page's updates of one kind, each with its time on the machine's monotonic clock (µs).</summary>
    internal static List<(long Us, int Value)> PageUpdates(JsonElement result, string name, Func<JsonElement, int> value)
    {
        var offsetUs = result.GetProperty("pageClockOffsetUs").GetInt64();
        return [.. result.GetProperty(name).EnumerateArray().Select(u => ((long)(u.GetProperty("t").GetDouble() * 1000) + offsetUs, value(u)))];
    }
}

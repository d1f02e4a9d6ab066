using System.Globalization;
using System.Net;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// The playground page in a real headless Chromium: text appears incrementally with EventSource + ticket
/// and with fetch, Stop aborts the upstream, a reused ticket fails. Also the page's availability and CORS.
/// "Incrementally" is causal: the upstream holds the rest of its reply until the page shows the first part.
/// </summary>
public sealed class PlaygroundTests(MockUpstreamFixture upstream, BrowserServer browser)
    : RelayTestBase(upstream, Settings), IClassFixture<BrowserServer>
{
    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["Relay:Playground:Enabled"] = "true",
        ["Relay:Cors:AllowedOrigins:0"] = "https://app.example",
    };

    // The reply: 20 chunks, then the gate, then 60 more (over 300 characters in all).
    private const int BeforeGate = 20;
    private const int Chunks = 80;

    [BrowserFact]
    public async Task EventSourceWithTicket_ShowsTheReplyIncrementally_AndTheTicketCannotBeReused()
    {
        var result = await RunGatedAsync("eventsource");
        var reuse = result.GetProperty("reuse");
        Assert.Equal(410, reuse.GetProperty("status").GetInt32());
        Assert.Equal("ticket_used", JsonDocument.Parse(reuse.GetProperty("body").GetString()!).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [BrowserFact]
    public async Task Fetch_ShowsTheReplyIncrementally()
    {
        await RunGatedAsync("fetch");
    }

    [BrowserFact]
    public async Task Stop_AbortsTheUpstream()
    {
        var result = await browser.RunAsync(Relay.Url, "stop", "fetch");
        Assert.Equal("stopped", result.GetProperty("status").GetString());
        var record = await Upstream.WaitForRecordAsync(result.GetProperty("requestId").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        // The upstream stopped generating well before the end of its 200-token reply.
        Assert.True(record.GetProperty("tokens_at_abort").GetInt32() < 150, record.ToString());
    }

    [BrowserFact]
    public async Task WebSocket_ShowsTheReplyIncrementally()
    {
        var result = await RunGatedAsync("websocket");
        Assert.Equal("completed", result.GetProperty("responses")[0].GetProperty("status").GetString());
    }

    [BrowserFact]
    public async Task WebSocket_Interrupt_CutsTheUpstreamAndContinuesFromTheDeliveredText()
    {
        var result = await browser.RunAsync(Relay.Url, "interrupt", "websocket");
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
        var result = await browser.RunAsync(Relay.Url, "stop", "websocket");
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
    /// Streams a reply whose upstream holds all but its first <see cref="BeforeGate"/> chunks until the page shows
    /// them (the driver then opens the gate), and asserts the page showed the whole reply in the end: the text appeared
    /// incrementally, since the page showed its first part while the rest had not been sent.
    /// </summary>
    private async Task<JsonElement> RunGatedAsync(string mode)
    {
        var contents = Enumerable.Range(0, Chunks).Select(GatedChatUpstream.Token).ToList();
        await using var gated = await GatedChatUpstream.StartAsync(contents, BeforeGate, usage: true);
        await using var relay = await InProcessRelay.StartAsync(gated.Url, Settings);
        var firstPart = string.Concat(contents.Take(BeforeGate));
        var result = await browser.RunAsync(relay.Url, "stream", mode, gated.GateUrl, firstPart.Length.ToString(CultureInfo.InvariantCulture));

        Assert.True(result.GetProperty("status").GetString() == "done", result.ToString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());
        Assert.True(await gated.OpenedByClient);
        // Before the gate the page showed exactly the part the upstream had sent; the rest came after it.
        Assert.Equal(firstPart, result.GetProperty("gate").GetProperty("text").GetString());
        var text = result.GetProperty("text").GetString()!;
        Assert.Equal(string.Concat(contents), text);
        Assert.True(text.Length > 300, text);
        Assert.EndsWith("ms", result.GetProperty("ttft").GetString());
        Assert.Equal(Chunks.ToString(CultureInfo.InvariantCulture), result.GetProperty("tokens").GetString());
        Assert.True(int.TryParse(result.GetProperty("tps").GetString(), out var tps) && tps > 0, result.GetProperty("tps").GetString());
        return result;
    }
}

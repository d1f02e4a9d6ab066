using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
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
        AssertStoppedInTheStall(record);
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
        // The first generation sends 20 chunks and then holds until it is aborted: the interrupt comes mid-reply however
        // slow the machine is. The continuation is a short whole reply.
        var bodies = new ConcurrentQueue<string>();
        var firstAborted = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var scripted = await ScriptedUpstream.StartAsync(async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            bodies.Enqueue(await reader.ReadToEndAsync());
            var first = bodies.Count == 1;
            context.Response.ContentType = "text/event-stream";
            foreach (var i in Enumerable.Range(0, first ? 20 : 5))
            {
                await context.Response.WriteAsync(GatedChatUpstream.ContentChunk(GatedChatUpstream.Token(i)), context.RequestAborted);
            }

            if (first)
            {
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(Deadline.Default, context.RequestAborted).ContinueWith(
                    delay => firstAborted.TrySetResult(delay.IsCanceled), TaskScheduler.Default);
                return;
            }

            await context.Response.WriteAsync(GatedChatUpstream.StopChunk + "data: [DONE]\n\n", context.RequestAborted);
        });
        await using var relay = await InProcessRelay.StartAsync(scripted.Url, Settings);

        var result = await browser.RunAsync(relay.Url, "interrupt", "websocket");
        Assert.True(result.GetProperty("status").GetString() == "done", result.ToString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());
        var responses = result.GetProperty("responses");
        Assert.Equal(2, responses.GetArrayLength());
        var first = responses[0];
        Assert.Equal("interrupted", first.GetProperty("status").GetString());
        Assert.Equal("completed", responses[1].GetProperty("status").GetString());
        Assert.Contains("[interrupted]", result.GetProperty("text").GetString(), StringComparison.Ordinal);

        // The interrupted generation was cut upstream (it would have held until the deadline otherwise).
        Assert.True(await firstAborted.Task.WaitAsync(Deadline.Default), "the first generation was not aborted");

        // The new request continues the conversation: the question, the partial reply as shown, the interruption.
        Assert.Equal(2, bodies.Count);
        var messages = JsonDocument.Parse(bodies.Last()).RootElement.GetProperty("messages");
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
        AssertStoppedInTheStall(record);
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
    /// The upstream generated no more than the 20 tokens before its stall (the driver's Stop scenario asks for a stall
    /// that only an abort ends): the abort, not the end of the 200-token reply, finished the generation, and nothing
    /// was generated after it.
    /// </summary>
    private static void AssertStoppedInTheStall(JsonElement record)
    {
        Assert.True(record.GetProperty("tokens_at_abort").GetInt32() <= 20, record.ToString());
        Assert.Equal(record.GetProperty("tokens_at_abort").GetInt32(), record.GetProperty("tokens_generated").GetInt32());
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

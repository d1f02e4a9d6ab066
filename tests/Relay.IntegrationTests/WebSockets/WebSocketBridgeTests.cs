using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>The WebSocket bridge with the .NET <see cref="ClientWebSocket"/>, against the simulated upstream.</summary>
public sealed class WebSocketBridgeTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, new Dictionary<string, string?>
{
    ["Relay:WebSocket:MaxMessageBytes"] = "4096",
})
{
    internal const int SlowTotalTokens = 200;

    internal static Dictionary<string, string> Fast(int tokens = 30) => new()
    {
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-max-tokens"] = tokens.ToString(),
    };

    internal static Dictionary<string, string> Slow(int ttftMs = 0) => new()
    {
        ["x-mock-tokens-per-second"] = "20",
        ["x-mock-ttft-ms"] = ttftMs.ToString(),
        ["x-mock-max-tokens"] = SlowTotalTokens.ToString(),
    };

    [Theory]
    [InlineData("/v1/chat/ws")]
    [InlineData("/v1/chat/completions")]
    public async Task FullResponse_DeliversTheSseStreamsChunks_ThenDoneWithUsage(string path)
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(), path);
        var created = await client.ReceiveAsync();
        Assert.Equal("session.created", created!.Type);

        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        Assert.Equal("response.created", messages[0].Type);
        var id = messages[0].Json.GetProperty("response").GetProperty("id").GetString();
        var chunks = messages.Where(m => m.Type == "response.chunk").ToList();
        Assert.All(chunks, c => Assert.Equal(id, c.Json.GetProperty("response_id").GetString()));
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.Json.GetProperty("chunk").GetProperty("object").GetString()));
        var text = string.Concat(chunks.Select(c => c.Content));

        var done = messages[^1].Json.GetProperty("response");
        Assert.Equal("completed", done.GetProperty("status").GetString());
        Assert.Equal(text, done.GetProperty("output_text").GetString());
        var usage = done.GetProperty("usage");
        Assert.Equal(30, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.False(usage.GetProperty("completion_tokens_counted").GetBoolean());
        Assert.Equal(200, done.GetProperty("upstream").GetProperty("status").GetInt32());

        // The same request over SSE delivers the same text in the same cadenced chunks (one pipeline).
        using var sse = await Client.SendAsync(SseRead.ChatRequest(Relay.Url, headers: Fast()), HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(sse);
        Assert.Equal(string.Concat(events.Select(e => e.Content)), text);
        Assert.Equal(events.Count(e => e.Content.Length > 0), chunks.Count(c => c.Content.Length > 0));
        Assert.True(chunks.Count < 30, $"{chunks.Count} chunk frames for 30 tokens: the cadence coalesces as on SSE");
    }

    [Fact]
    public async Task AppendWhileStreaming_CutsOver_UpstreamAborted_NewRequestContinuesFromThePartialReply()
    {
        const int ttftMs = 150;
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Slow(ttftMs));
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create("Tell me a story."));
        var content = 0;
        var first = await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && ++content >= 3);
        var firstId = first[0].Json.GetProperty("response").GetProperty("id").GetString();

        var appendUs = SseRead.NowUs();
        await client.SendAsync(BridgeClient.Append("Stop, tell me about cats instead."));
        var cut = await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && m.Json.GetProperty("response_id").GetString() != firstId);

        Assert.Contains(cut, m => m.Type == "conversation.item.created");
        var interrupted = cut.Single(m => m.Type == "response.done").Json.GetProperty("response");
        Assert.Equal("interrupted", interrupted.GetProperty("status").GetString());
        var delivered = string.Concat(first.Concat(cut).Where(m => m.Type == "response.chunk" && m.Json.GetProperty("response_id").GetString() == firstId).Select(m => m.Content));
        Assert.Equal(delivered, interrupted.GetProperty("output_text").GetString());
        Assert.True(interrupted.GetProperty("usage").GetProperty("completion_tokens").GetInt32() >= 3);
        var secondId = cut.Single(m => m.Type == "response.created").Json.GetProperty("response").GetProperty("id").GetString();
        Assert.NotEqual(firstId, secondId);

        var firstRecord = await Upstream.WaitForRecordAsync(interrupted.GetProperty("upstream").GetProperty("request_id").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        CancellationTests.AssertAborted(firstRecord, appendUs);

        var rest = await client.ReceiveUntilAsync("response.done");
        var second = rest[^1].Json.GetProperty("response");
        var secondRecord = await Upstream.RecordAsync(second.GetProperty("upstream").GetProperty("request_id").GetString()!);
        var messages = JsonDocument.Parse(secondRecord.GetProperty("request_body").GetString()!).RootElement.GetProperty("messages");
        Assert.Equal(3, messages.GetArrayLength());
        Assert.Equal("Tell me a story.", messages[0].GetProperty("content").GetString());
        Assert.Equal("assistant", messages[1].GetProperty("role").GetString());
        Assert.Equal(delivered, messages[1].GetProperty("content").GetString());
        Assert.Equal("Stop, tell me about cats instead.", messages[2].GetProperty("content").GetString());
        Assert.Equal("completed", second.GetProperty("status").GetString());

        // The new request is the append's doing (it reached the upstream after the append was sent); how soon after is
        // a latency figure, which the benchmark measures, not a test.
        Assert.True(secondRecord.GetProperty("arrived_us").GetInt64() > appendUs, $"the new request reached the upstream before the append: {secondRecord}");
    }

    [Fact]
    public async Task Cancel_StopsTheUpstream_AndTheSocketServesTheNextResponse()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Slow());
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var content = 0;
        await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && ++content >= 3);
        var cancelUs = SseRead.NowUs();
        await client.SendAsync(new { type = "response.cancel" });
        var done = (await client.ReceiveUntilAsync("response.done"))[^1].Json.GetProperty("response");
        Assert.Equal("cancelled", done.GetProperty("status").GetString());
        var record = await Upstream.WaitForRecordAsync(done.GetProperty("upstream").GetProperty("request_id").GetString()!,
            r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        CancellationTests.AssertAborted(record, cancelUs);

        // Nothing to cancel now: an error, and the socket stays usable.
        await client.SendAsync(new { type = "response.cancel" });
        var error = await client.ReceiveAsync();
        Assert.Equal("response_cancel_not_active", error!.Json.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task SequentialResponses_OnOneSocket_CarryTheConversation()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(10));
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create("one"));
        var first = (await client.ReceiveUntilAsync("response.done"))[^1].Json.GetProperty("response");

        await client.SendAsync(BridgeClient.Append("two"));
        Assert.Equal("conversation.item.created", (await client.ReceiveAsync())!.Type);
        await client.SendAsync(new { type = "response.create" });
        var second = (await client.ReceiveUntilAsync("response.done"))[^1].Json.GetProperty("response");

        Assert.All(new[] { first, second }, r => Assert.Equal("completed", r.GetProperty("status").GetString()));
        Assert.NotEqual(first.GetProperty("id").GetString(), second.GetProperty("id").GetString());
        var record = await Upstream.RecordAsync(second.GetProperty("upstream").GetProperty("request_id").GetString()!);
        var messages = JsonDocument.Parse(record.GetProperty("request_body").GetString()!).RootElement.GetProperty("messages");
        Assert.Equal(["one", first.GetProperty("output_text").GetString(), "two"], messages.EnumerateArray().Select(m => m.GetProperty("content").GetString()));
    }

    [Fact]
    public async Task ResponseCreate_WhileAResponseRuns_IsRefused_OneResponseAtATime()
    {
        // A slow response (200 tokens at 20 tokens/s), so the second create certainly arrives while the first runs (with
        // a 10-token response at full pace it sometimes finished first on a loaded machine).
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Slow());
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create("three"));
        await client.ReceiveUntilAsync("response.created");
        await client.SendAsync(BridgeClient.Create("four"));
        var refused = await client.ReceiveUntilAsync("error");
        Assert.Equal("conversation_already_has_active_response", refused[^1].Json.GetProperty("error").GetProperty("code").GetString());

        await client.SendAsync(new { type = "response.cancel" });
        var done = (await client.ReceiveUntilAsync("response.done"))[^1].Json.GetProperty("response");
        Assert.Equal("cancelled", done.GetProperty("status").GetString());
    }

    [Fact]
    public async Task ResponseCreateRightAfterDone_IsNeverRefusedAsInProgress()
    {
        // A client that reacts to response.done at once must find the response over (it once raced the session:
        // the response counted as in progress until its task completed, just after the send). Long responses of one
        // frame per token on several sockets keep the sends asynchronous, which makes the window show.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async s =>
        {
            await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(1000));
            await client.ReceiveAsync();
            for (var i = 0; i < 10; i++)
            {
                await client.SendAsync(new
                {
                    type = "response.create",
                    response = new { model = "mock", messages = new[] { new { role = "user", content = $"s{s} n{i}" } }, stream_options = new { chunk_size = 1 } },
                });
                var messages = await client.ReceiveUntilAsync("response.done");
                Assert.DoesNotContain(messages, m => m.Type == "error");
                Assert.Equal("completed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
            }
        }));
    }

    [Fact]
    public async Task MalformedMessages_GetErrors_AndTheSocketStaysUsable()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(5));
        await client.ReceiveAsync();
        foreach (var (raw, code) in new[]
        {
            ("not json", "invalid_json"), ("{\"type\":", "invalid_json"), ("[1,2]", "invalid_message"), ("{\"no\":\"type\"}", "invalid_message"),
            ("{\"type\":\"session.update\"}", "unknown_message_type"), ("{\"type\":\"response.create\",\"response\":5}", "invalid_value"),
            ("{\"type\":\"conversation.item.create\",\"item\":{\"content\":\"no role\"}}", "invalid_value"),
            ("{\"type\":\"response.create\",\"response\":{\"model\":\"mock\",\"messages\":[]}}", "empty_conversation"),
        })
        {
            await client.SendRawAsync(raw);
            var error = await client.ReceiveAsync();
            Assert.Equal("error", error!.Type);
            Assert.Equal(code, error.Json.GetProperty("error").GetProperty("code").GetString());
        }

        await client.SendAsync(BridgeClient.Create());
        var done = (await client.ReceiveUntilAsync("response.done"))[^1];
        Assert.Equal("completed", done.Json.GetProperty("response").GetProperty("status").GetString());
    }

    [Fact]
    public async Task OversizedMessage_ClosesWith1009_ASmallerOneIsServed()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(5));
        await client.ReceiveAsync();

        // Control: just under the limit (4096 bytes) is a message like any other.
        await client.SendRawAsync("{\"type\":\"x\",\"pad\":\"" + new string('a', 4000) + "\"}");
        Assert.Equal("unknown_message_type", (await client.ReceiveAsync())!.Json.GetProperty("error").GetProperty("code").GetString());

        await client.SendRawAsync("{\"type\":\"x\",\"pad\":\"" + new string('a', 5000) + "\"}");
        Assert.Null(await client.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, client.Socket.CloseStatus);
    }

    [Fact]
    public async Task UpstreamError_BecomesAnErrorMessage_AndAFailedResponse()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, new Dictionary<string, string> { ["x-mock-status"] = "429" });
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        var error = messages.Single(m => m.Type == "error").Json;
        Assert.Equal(429, error.GetProperty("status").GetInt32());
        var done = messages[^1].Json.GetProperty("response");
        Assert.Equal("failed", done.GetProperty("status").GetString());
        Assert.Equal(429, done.GetProperty("upstream").GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task MidStreamUpstreamFailure_EndsWithErrorEvent_ThenFailed()
    {
        var knobs = Fast(50);
        knobs["x-mock-fail-after-tokens"] = "5";
        knobs["x-mock-fail-mode"] = "reset";
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, knobs);
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        Assert.Equal("error", messages[^2].Type);
        Assert.Equal("upstream_disconnected", messages[^2].Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("failed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
    }

    [Fact]
    public async Task AbruptDisconnect_AbortsTheUpstream()
    {
        var client = await BridgeClient.ConnectAsync(Relay.Url, Slow());
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var content = 0;
        var chunks = await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && ++content >= 3);
        var abortUs = SseRead.NowUs();
        client.Socket.Abort();
        await client.DisposeAsync();

        // The simulated upstream's chunk ids are chatcmpl-{its request id}.
        var id = chunks[^1].Json.GetProperty("chunk").GetProperty("id").GetString()!["chatcmpl-".Length..];
        var record = await Upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        CancellationTests.AssertAborted(record, abortUs);
    }

    [Fact]
    public async Task MalformedMessageWithEventId_TheErrorEchoesIt()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, Fast(5));
        await client.ReceiveAsync();
        foreach (var (raw, eventId) in new[] { ("{\"event_id\":\"e3\"}", "e3"), ("{\"type\":42,\"event_id\":\"e4\"}", "e4"), ("{\"type\":null,\"event_id\":\"e5\"}", "e5") })
        {
            await client.SendRawAsync(raw);
            var error = await client.ReceiveAsync();
            Assert.Equal("error", error!.Type);
            Assert.Equal("invalid_message", error.Json.GetProperty("error").GetProperty("code").GetString());
            Assert.Equal(eventId, error.Json.GetProperty("event_id").GetString());
        }

        // Control: a message that is not an object has no event_id to echo.
        await client.SendRawAsync("[{\"event_id\":\"e6\"}]");
        var control = await client.ReceiveAsync();
        Assert.Equal("invalid_message", control!.Json.GetProperty("error").GetProperty("code").GetString());
        Assert.False(control.Json.TryGetProperty("event_id", out _));
    }

    [Fact]
    public async Task PlainRequestToTheWebSocketPath_Gets426_NamingWebSocketInUpgrade()
    {
        var response = await Client.GetAsync($"{Relay.Url}/v1/chat/ws");

        // RFC 9110 section 15.5.22: a 426 MUST carry Upgrade; section 7.8: Upgrade comes with Connection: upgrade.
        Assert.Equal(["websocket"], response.Headers.Upgrade.Select(p => p.ToString()));
        Assert.Contains("Upgrade", response.Headers.Connection, StringComparer.OrdinalIgnoreCase);
        Assert.Equal("13", response.Headers.GetValues("Sec-WebSocket-Version").Single());
        await ErrorTests.AssertErrorAsync(response, 426, "invalid_request_error", "websocket_required");
    }

    [Fact]
    public async Task HandshakeWithAnotherVersion_Gets426_WithTheSupportedVersionAndUpgrade()
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(Relay.Url).Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "GET /v1/chat/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"));
        var head = (await CancellationTests.ReadHeadAsync(stream)).Split("\r\n");

        Assert.Equal("HTTP/1.1 426 Upgrade Required", head[0]);

        // RFC 6455 section 4.4: the versions the server understands; without it a client cannot retry.
        Assert.Contains("Sec-WebSocket-Version: 13", head);
        Assert.Contains("Upgrade: websocket", head);
        Assert.Contains("Connection: Upgrade", head);
    }
}

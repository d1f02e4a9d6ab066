using System.ClientModel;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// How a stream ends when the upstream ends it (its own error event, a
/// <c>[DONE]</c> without the last blank line, a non-chat stream's unterminated event) and that an <c>id:</c>-only
/// block survives. What a browser's <c>EventSource</c> would dispatch is read with the framework's WHATWG parser.
/// </summary>
public sealed partial class StreamEndingTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    private const string HiChunk = """{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}""";

    [Fact]
    public async Task UpstreamErrorEvent_WhileCharacterIncomplete_IsTheLastEvent()
    {
        // (Raw partial UTF-8 bytes before an error event: Relay.Middleware.Tests' StreamEndingTests.)
        var events = await ReadAsync(Relay.Url, ErrorEventKnobs("surrogates"));
        Assert.True(events[^1].IsError, events[^1].Data);
        Assert.Equal("mock_failure", events[^1].Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Single(events, static e => e.IsError);
        Assert.DoesNotContain(events, static e => e.Data.Contains("\\ufffd", StringComparison.OrdinalIgnoreCase) || e.Data.Contains('\uFFFD'));
    }

    [Fact]
    public async Task Control_UpstreamErrorEvent_DirectStreamEndsInsideACharacter()
    {
        // The reproduction is valid: seed 1014 sends half of a surrogate pair, then its error event.
        var events = await ReadAsync(Upstream.Url, ErrorEventKnobs("surrogates"));
        Assert.True(events[^1].IsError);
        var lastContent = events.Last(static e => e.Data.Contains("\"content\"", StringComparison.Ordinal)).Data;
        Assert.Matches(TrailingHighSurrogate(), lastContent);
    }

    [Fact]
    public async Task DoneWithoutFinalBlankLine_IsACompleteStream()
    {
        await using var scripted = new ScriptedSseUpstream($"data: {HiChunk}\n\ndata: [DONE]\n");
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        var events = await ReadAsync(relay.Url, []);
        Assert.Equal("hi", string.Concat(events.Select(static e => e.Content)));
        Assert.True(events[^1].IsDone, events[^1].Data);
        Assert.DoesNotContain(events, static e => e.IsError);
        Assert.Equal("hi", await SdkTextAsync(relay.Url));
    }

    [Fact]
    public async Task Control_DoneWithoutFinalBlankLine_OpenAISdkDirect()
    {
        await using var scripted = new ScriptedSseUpstream($"data: {HiChunk}\n\ndata: [DONE]\n");
        Assert.Equal("hi", await SdkTextAsync(scripted.Url));
    }

    [Fact]
    public async Task NonChatEventStream_PassesThroughExactly_EndIncluded()
    {
        const string body = "retry:1000\ndata:test1\n\nid:test\ndata:test2\n";
        await using var scripted = new ScriptedSseUpstream(body);
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        var received = await Client.GetStringAsync($"{relay.Url}/v1/events/x");
        Assert.Equal(body, received);
        var (data, _) = await WhatwgAsync(received);
        Assert.Equal(["test1"], data);
    }

    [Fact]
    public async Task IdOnlyBlock_OnChatRoute_ClientKeepsTheLastEventId()
    {
        const string body = "id: 7\n\ndata: after\n\ndata: [DONE]\n\n";
        await using var scripted = new ScriptedSseUpstream(body);
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        using var request = SseRead.ChatRequest(relay.Url);
        using var response = await Client.SendAsync(request);
        var received = await response.Content.ReadAsStringAsync();
        var (data, ids) = await WhatwgAsync(received);
        Assert.Equal(["after", "[DONE]"], data);
        Assert.Equal(["7", "7"], ids);

        // Control: the same upstream read directly gives the same.
        var direct = await WhatwgAsync(body);
        Assert.Equal(direct.Data, data);
        Assert.Equal(direct.LastEventIds, ids);
    }

    private async Task<List<ReceivedEvent>> ReadAsync(string url, Dictionary<string, string> knobs)
    {
        using var request = SseRead.ChatRequest(url, headers: knobs);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return await SseRead.ReadAllAsync(response);
    }

    private static Dictionary<string, string> ErrorEventKnobs(string boundary) => new()
    {
        ["x-mock-seed"] = "1014",
        ["x-mock-max-tokens"] = "20",
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-token-boundary"] = boundary,
        ["x-mock-fail-after-tokens"] = "4",
        ["x-mock-fail-mode"] = "error-event",
    };

    private static async Task<string> SdkTextAsync(string baseUrl)
    {
        var client = new ChatClient("m", new ApiKeyCredential("sk-not-used"), new OpenAIClientOptions { Endpoint = new Uri(baseUrl + "/v1") });
        var text = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        return text.ToString();
    }

    /// <summary>The data of each event a WHATWG client dispatches, and the source's last event ID at that event.</summary>
    private static async Task<(List<string> Data, List<string> LastEventIds)> WhatwgAsync(string sse)
    {
        var data = new List<string>();
        var ids = new List<string>();
        var parser = SseParser.Create(new MemoryStream(Encoding.UTF8.GetBytes(sse)));
        await foreach (var item in parser.EnumerateAsync())
        {
            data.Add(item.Data);
            ids.Add(parser.LastEventId);
        }

        return (data, ids);
    }

    [GeneratedRegex("""
        "content":"(?:[^"\\]|\\.)*\\ud[89ab][0-9a-f]{2}"
        """, RegexOptions.IgnoreCase)]
    private static partial Regex TrailingHighSurrogate();
}

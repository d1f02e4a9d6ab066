using System.ClientModel;
using System.Text;
using OpenAI;
using OpenAI.Chat;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>End to end through Relay: cadence, per-request chunk size, usage semantics, a real SDK.</summary>
public sealed class CadenceEndToEndTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    [Fact]
    public async Task DefaultCadence_At100TokensPerSecond_SendsAboutEightTimesFewerEvents()
    {
        var (events, tokens, text) = await StreamAsync(null, tokensPerSecond: 100, maxTokens: 120, seed: 11);
        var direct = await DirectTextAsync(120, 11);
        var contentEvents = events.Count(e => e.Content.Length > 0);
        Assert.Equal(direct, text);
        // At 100 tokens/s a token comes every 10 ms, so the 20 ms interval flushes first: about 2 tokens an
        // event. (8 tokens an event needs 8 tokens within 20 ms: the next test.)
        Assert.True(contentEvents <= tokens / 1.8, $"{contentEvents} content events for {tokens} tokens");
    }

    [Fact]
    public async Task DefaultCadence_FastUpstream_MergesEightTokensPerEvent()
    {
        // An upstream faster than the interval: the 8-token rule governs, so about 8x fewer events.
        var (events, tokens, text) = await StreamAsync(null, tokensPerSecond: 2000, maxTokens: 160, seed: 12);
        Assert.Equal(await DirectTextAsync(160, 12), text);
        var contentEvents = events.Count(e => e.Content.Length > 0);
        var upstreamEvents = await DirectContentEventsAsync(160, 12);
        // The first token goes alone, then groups of 8; a grapheme hold or a 20 ms tick may split a group.
        Assert.True(contentEvents <= upstreamEvents / 8 + 6 && contentEvents >= upstreamEvents / 8,
            $"{contentEvents} client events for {upstreamEvents} upstream content events ({tokens} tokens)");
    }

    [Fact]
    public async Task ChunkSizeOne_DeliversEveryToken()
    {
        var (events, tokens, text) = await StreamAsync(new { chunk_size = 1 }, tokensPerSecond: 2000, maxTokens: 80, seed: 13);
        Assert.Equal(await DirectTextAsync(80, 13), text);
        // "hold" mode sends whole characters, so a multi-token character arrives as one upstream event: every
        // upstream content event is one client event.
        Assert.Equal(await DirectContentEventsAsync(80, 13), events.Count(e => e.Content.Length > 0));
        Assert.True(tokens >= events.Count(e => e.Content.Length > 0));
    }

    [Fact]
    public async Task FirstToken_IsNotDelayedByCadence()
    {
        // The upstream sends one token and holds the other seven until the client has it: a coalescer that waited for
        // 8 tokens would never deliver it (and the gate would never open).
        await using var upstream = await GatedChatUpstream.StartAsync(before: 1, after: 7);
        await using var relay = await InProcessRelay.StartAsync(upstream.Url);
        using var deadline = new CancellationTokenSource(Deadline.Default);
        using var response = await Client.SendAsync(SseRead.ChatRequest(relay.Url), HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        var events = await SseRead.ReadAllAsync(response, deadline.Token, e =>
        {
            if (e.Content.Length > 0)
            {
                upstream.Open();
            }

            return false;
        });
        Assert.True(await upstream.OpenedByClient);
        Assert.Equal("token0 ", events.First(static e => e.Content.Length > 0).Content);
        Assert.True(events[^1].IsDone);
    }

    [Fact]
    public async Task Usage_OnlyWhenTheClientAskedForIt()
    {
        var (without, _, _) = await StreamAsync(null, 2000, 20, 14);
        Assert.DoesNotContain(without, e => !e.IsDone && e.Json.TryGetProperty("usage", out var u) && u.ValueKind == System.Text.Json.JsonValueKind.Object);

        var (with, _, _) = await StreamAsync(new { include_usage = true }, 2000, 20, 14);
        var last = with.Where(e => !e.IsDone).Last();
        var usage = last.Json.GetProperty("usage");
        Assert.Equal(20, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0, last.Json.GetProperty("choices").GetArrayLength());
        Assert.True(with[^1].IsDone);
    }

    [Fact]
    public async Task OpenAIDotNetSdk_StreamsFullTextAndUsage()
    {
        var client = new ChatClient("mock", new ApiKeyCredential("sk-not-used"), new OpenAIClientOptions { Endpoint = new Uri(Relay.Url + "/v1") });
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 60 };
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Hello")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
        }

        Assert.True(text.Length > 20);
        Assert.DoesNotContain('\uFFFD', text.ToString());
        Assert.NotNull(usage);
        Assert.Equal(60, usage!.OutputTokenCount);
    }

    [Theory]
    [InlineData("raw-bytes")]
    [InlineData("surrogates")]
    public async Task BrokenTokenBoundaries_AreRepaired(string mode)
    {
        var headers = Knobs(2000, 200, 15);
        headers["x-mock-token-boundary"] = mode;
        using var request = SseRead.ChatRequest(Relay.Url, streamOptions: new { chunk_size = 1 }, headers: headers);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        var text = string.Concat(events.Select(e => e.Content));
        Assert.Equal(await DirectTextAsync(200, 15), text);
        Assert.DoesNotContain('\uFFFD', text);
    }

    private async Task<(List<ReceivedEvent> Events, int Tokens, string Text)> StreamAsync(object? streamOptions, int tokensPerSecond, int maxTokens, int seed)
    {
        using var request = SseRead.ChatRequest(Relay.Url, streamOptions: streamOptions, headers: Knobs(tokensPerSecond, maxTokens, seed));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
        return (events, maxTokens, string.Concat(events.Select(e => e.Content)));
    }

    private async Task<string> DirectTextAsync(int maxTokens, int seed)
    {
        using var request = SseRead.ChatRequest(Upstream.Url, headers: Knobs(0, maxTokens, seed));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return string.Concat((await SseRead.ReadAllAsync(response)).Select(e => e.Content));
    }

    private async Task<int> DirectContentEventsAsync(int maxTokens, int seed)
    {
        using var request = SseRead.ChatRequest(Upstream.Url, headers: Knobs(0, maxTokens, seed));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return (await SseRead.ReadAllAsync(response)).Count(e => e.Content.Length > 0);
    }

    private static Dictionary<string, string> Knobs(int tokensPerSecond, int maxTokens, int seed) => new()
    {
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(), ["x-mock-ttft-ms"] = "0",
        ["x-mock-max-tokens"] = maxTokens.ToString(), ["x-mock-seed"] = seed.ToString(),
    };
}

using System.Text.Json;

namespace MockInference.Tests;

public sealed class ChatStreamingTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    [Fact]
    public async Task Stream_HasOpenAiChunkShape_RoleFirstUsageLastThenDone()
    {
        var (response, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(includeUsage: true, maxTokens: 20));

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.TryGetValues("x-mock-request-id", out var ids));
        Assert.False(string.IsNullOrEmpty(ids.Single()));

        Assert.True(events[^1].IsDone);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        foreach (var chunk in chunks)
        {
            Assert.StartsWith("chatcmpl-", chunk.GetProperty("id").GetString());
            Assert.Equal("chat.completion.chunk", chunk.GetProperty("object").GetString());
            Assert.Equal("mock", chunk.GetProperty("model").GetString());
            Assert.True(chunk.GetProperty("created").GetInt64() > 0);
            Assert.True(chunk.TryGetProperty("system_fingerprint", out _));
            Assert.True(chunk.GetProperty("mock_emitted_us").GetInt64() > 0);
        }

        var first = chunks[0].GetProperty("choices")[0];
        Assert.Equal("assistant", first.GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal("", first.GetProperty("delta").GetProperty("content").GetString());
        Assert.Equal(JsonValueKind.Null, first.GetProperty("finish_reason").ValueKind);

        var contentChunks = chunks[1..^2];
        Assert.NotEmpty(contentChunks);
        foreach (var chunk in contentChunks)
        {
            var choice = chunk.GetProperty("choices")[0];
            Assert.True(choice.GetProperty("delta").TryGetProperty("content", out _));
            Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
            Assert.Equal(JsonValueKind.Null, choice.GetProperty("finish_reason").ValueKind);
            Assert.Equal(JsonValueKind.Null, chunk.GetProperty("usage").ValueKind);
        }

        var finish = chunks[^2].GetProperty("choices")[0];
        Assert.Empty(finish.GetProperty("delta").EnumerateObject());
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());

        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        var usage = usageChunk.GetProperty("usage");
        Assert.Equal(20, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.Equal(
            usage.GetProperty("prompt_tokens").GetInt32() + 20,
            usage.GetProperty("total_tokens").GetInt32());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public async Task Logprobs_EachContentChunkCarriesItsTokenList(int top)
    {
        var body = JsonSerializer.Serialize(new
        {
            model = "mock",
            stream = true,
            logprobs = true,
            top_logprobs = top,
            max_tokens = 12,
            messages = new[] { new { role = "user", content = "Hello" } },
        });
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Post("/v1/chat/completions", body));
        var content = events.Where(e => !e.IsDone).Select(e => e.Json.GetProperty("choices")[0])
            .Where(c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.GetString()!.Length > 0 && !c.GetProperty("delta").TryGetProperty("role", out _))
            .ToList();
        Assert.NotEmpty(content);
        foreach (var choice in content)
        {
            var text = choice.GetProperty("delta").GetProperty("content").GetString()!;
            var entry = Assert.Single(choice.GetProperty("logprobs").GetProperty("content").EnumerateArray());
            Assert.Equal(text, entry.GetProperty("token").GetString());
            Assert.True(entry.GetProperty("logprob").GetDouble() <= 0);
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(text), entry.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()).ToArray());
            Assert.Equal(top, entry.GetProperty("top_logprobs").GetArrayLength());
            Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").GetProperty("refusal").ValueKind);
        }
    }

    [Fact]
    public async Task TopLogprobs_WithoutLogprobs_Is400()
    {
        var body = JsonSerializer.Serialize(new { model = "mock", top_logprobs = 3, messages = new[] { new { role = "user", content = "Hello" } } });
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/chat/completions", body));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Stream_WithoutIncludeUsage_HasNoUsageField()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(maxTokens: 5));

        Assert.All(events.Where(e => !e.IsDone), e => Assert.False(e.Json.TryGetProperty("usage", out _)));
        Assert.All(events.Where(e => !e.IsDone), e => Assert.Equal(1, e.Json.GetProperty("choices").GetArrayLength()));
    }

    [Fact]
    public async Task StreamedContent_EqualsNonStreamedContent_ForSameSeed()
    {
        var knobs = new Dictionary<string, string> { ["x-mock-seed"] = "1234" };
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: knobs));

        using var response = await server.Client.SendAsync(MockApi.Chat(stream: false, knobs: knobs));
        response.EnsureSuccessStatusCode();
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("chat.completion", completion.GetProperty("object").GetString());
        var choice = completion.GetProperty("choices")[0];
        var message = choice.GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());

        var streamed = MockApi.Content(events);
        Assert.True(streamed.Length > 100);
        Assert.Equal(message.GetProperty("content").GetString(), streamed);
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.True(completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32() >= 200);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(42)]
    public async Task TextReply_WithoutLimit_IsWholeSentences_FirstEndAtOrPast200Tokens(int seed)
    {
        var knobs = new Dictionary<string, string> { ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        using var response = await server.Client.SendAsync(MockApi.Chat(stream: false, knobs: knobs));
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var choice = completion.GetProperty("choices")[0];
        var tokens = completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32();

        // docs/mock-inference.md: "natural length (whole sentences, at least 200 tokens)"; the longest sentence is under 40 tokens.
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.EndsWith(".", choice.GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.InRange(tokens, 200, 240);
    }

    [Fact]
    public async Task DifferentSeeds_GiveDifferentReplies()
    {
        var (_, a) = await MockApi.StreamAsync(server.Client, MockApi.Chat(maxTokens: 40, knobs: new() { ["x-mock-seed"] = "1" }));
        var (_, b) = await MockApi.StreamAsync(server.Client, MockApi.Chat(maxTokens: 40, knobs: new() { ["x-mock-seed"] = "2" }));

        Assert.NotEqual(MockApi.Content(a), MockApi.Content(b));
    }

    [Fact]
    public async Task MaxTokens_FinishesWithLength_AndCountsExactly()
    {
        using var response = await server.Client.SendAsync(MockApi.Chat(stream: false, maxTokens: 7));
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal("length", completion.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(7, completion.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task MaxTokensHeader_OverridesBody()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client,
            MockApi.Chat(includeUsage: true, maxTokens: 50, knobs: new() { ["x-mock-max-tokens"] = "3" }));

        Assert.Equal(3, events[^2].Json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task NEqualsTwo_InterleavesChoices_EachWithRoleAndFinish()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(n: 2, maxTokens: 10, includeUsage: true));

        var indexes = events.Where(e => !e.IsDone)
            .SelectMany(e => e.Json.GetProperty("choices").EnumerateArray())
            .Select(c => c.GetProperty("index").GetInt32())
            .ToList();

        // role, role, then tokens alternate 0, 1, 0, 1, ...
        Assert.Equal([0, 1, 0, 1, 0, 1], indexes.Take(6));
        Assert.Equal(indexes.Count(i => i == 0), indexes.Count(i => i == 1));
        var finishes = events.Where(e => !e.IsDone)
            .SelectMany(e => e.Json.GetProperty("choices").EnumerateArray())
            .Where(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            .Select(c => c.GetProperty("index").GetInt32());
        Assert.Equal([0, 1], finishes.Order());
        Assert.NotEqual(MockApi.Content(events, 0), MockApi.Content(events, 1));
        Assert.Equal(20, events[^2].Json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Tokens_ArriveIncrementally_AtTheConfiguredRate()
    {
        const int tokens = 20;
        var knobs = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "10", ["x-mock-ttft-ms"] = "100" };
        var (response, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(maxTokens: tokens, knobs: knobs));

        var content = events.Where(e => !e.IsDone && e.Json.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var c)
            && c.GetString() != "").ToList();
        var firstReceived = content[0].ReceivedUs;
        var lastEmitted = content[^1].Json.GetProperty("mock_emitted_us").GetInt64();

        // 20 tokens at 10/s: the last is emitted ~1.9 s after the first, which the client already had (a buffered
        // stream would deliver the first only after the last). An order of events, not a bound.
        Assert.True(firstReceived < lastEmitted, $"first received {firstReceived}, last emitted {lastEmitted}");

        // Token i is due at arrival + ttft + i / rate: never earlier (but for the timer tick, ~4 ms on Linux). How much
        // later on a loaded machine is not this test's business (the benchmark measures pacing).
        var record = await MockApi.GetRecordAsync(server.Client, response.Headers.GetValues("x-mock-request-id").Single());
        var arrived = record.GetProperty("arrived_us").GetInt64();
        var emitted = record.GetProperty("token_emit_us").EnumerateArray().Select(t => t.GetInt64()).ToArray();
        Assert.Equal(tokens, emitted.Length);
        for (var i = 0; i < tokens; i++)
        {
            Assert.True(emitted[i] >= arrived + 100_000 + (i * 100_000) - 10_000, $"token {i} emitted early: {string.Join(",", emitted.Select(e => e - arrived))}");
        }

        Assert.True(emitted[^1] - arrived >= 2_000_000 - 10_000, $"the last token came early: {emitted[^1] - arrived} us");
    }

    [Fact]
    public async Task JsonReply_ConcatenatesToValidJson()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: new() { ["x-mock-reply"] = "json" }));

        var text = MockApi.Content(events);
        using var document = JsonDocument.Parse(text);
        var root = document.RootElement;
        Assert.Equal(JsonValueKind.Object, root.ValueKind);
        Assert.Equal(JsonValueKind.Array, root.GetProperty("items").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("owner").ValueKind);
        Assert.Equal(JsonValueKind.True, root.GetProperty("active").ValueKind);
        Assert.Equal("stop", events[^2].Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task EchoReply_ReturnsTheLastUserMessage()
    {
        const string user = "Echo me: 東京 👩‍👩‍👧‍👦 café";
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(user: user, knobs: new() { ["x-mock-reply"] = "echo" }));

        Assert.Equal(user, MockApi.Content(events));
    }

    [Fact]
    public async Task MalformedBody_Is400_WithOpenAiError()
    {
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/chat/completions", "{not json"));

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True(response.Headers.Contains("x-mock-request-id"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.True(error.TryGetProperty("param", out _));
        Assert.True(error.TryGetProperty("code", out _));
    }

    [Fact]
    public async Task MissingMessages_Is400_NamingTheParam()
    {
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/chat/completions", """{"model":"mock"}"""));

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("messages", error.GetProperty("param").GetString());
    }
}

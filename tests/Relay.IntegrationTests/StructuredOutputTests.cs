using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;
using Relay.Middleware.StructuredOutput;

namespace Relay.IntegrationTests;

/// <summary>
/// Streamed structured output through Relay. <c>stream_options.partial_json</c> adds the partial value
/// (<c>delta.parsed</c>) to each flushed event of a JSON reply; with <c>response_format</c> <c>json_schema</c>, the
/// output is validated as it streams and the first violation cancels the upstream and ends the stream with a
/// <c>schema_violation</c> error event.
/// </summary>
public sealed class StructuredOutputTests(MockUpstreamFixture upstream) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    // A support ticket: every keyword a drift of the mock can break (type, enum, maxLength, additionalProperties).
    internal const string Schema = """
        {
          "type": "object",
          "additionalProperties": false,
          "required": ["title", "priority", "labels", "steps"],
          "properties": {
            "title": { "type": "string", "maxLength": 20 },
            "priority": { "enum": ["low", "normal", "urgent"], "type": "string" },
            "labels": { "type": "array", "maxItems": 6, "items": { "type": "string", "maxLength": 30 } },
            "steps": {
              "type": "array",
              "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["n", "text"],
                "properties": { "n": { "type": "integer" }, "text": { "type": "string", "maxLength": 60 }, "done": { "type": "boolean" } }
              }
            }
          }
        }
        """;

    private const string AnyObject = """{"type":"object"}""";

    // 200 tokens/s against Relay's default 20 ms flush interval: one interval holds 4 tokens.
    private const int TokensPerSecond = 200;
    private const int TokensPerInterval = 4;
    private const double FlushIntervalMs = 20;

    private readonly CapturingUsageSink _sink = new();
    private readonly HttpClient _client = new(new SocketsHttpHandler { MaxResponseDrainSize = 0 });
    private InProcessRelay _relay = null!;

    public async Task InitializeAsync()
        => _relay = await InProcessRelay.StartAsync(upstream.Url, services: s => s.AddSingleton<IStreamUsageSink>(_sink));

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _relay.DisposeAsync();
    }

    [Fact]
    public async Task PartialJson_EachContentEventCarriesTheParsedValue_GrowingToTheWholeDocument()
    {
        var (response, events) = await StreamAsync(_relay.Url, new { partial_json = true }, tokensPerSecond: 0);
        Assert.True(events[^1].IsDone, events[^1].Data);
        var content = events.Where(static e => e.Content.Length > 0).ToList();
        Assert.NotEmpty(content);
        var parsed = content.Select(static e => Delta(e).TryGetProperty("parsed", out var p) ? p : (JsonElement?)null).ToList();

        // Every content event after the first bracket carries one value, and the last is the whole document.
        Assert.All(parsed, static p => Assert.True(p is { ValueKind: JsonValueKind.Object }, "a content event without delta.parsed"));
        using var whole = JsonDocument.Parse(string.Concat(events.Select(static e => e.Content)));
        Assert.True(JsonElement.DeepEquals(whole.RootElement, parsed[^1]!.Value), $"{parsed[^1]} != {whole.RootElement}");

        // Fields appear before the end: an early value already has a property the document has, and fewer of them.
        Assert.Contains(parsed, p => p!.Value.EnumerateObject().Any() && p.Value.EnumerateObject().Count() < whole.RootElement.EnumerateObject().Count());

        // Relay's options never reach the upstream.
        var record = await upstream.WaitForRecordAsync(response.Headers.GetValues("x-mock-request-id").Single(), MockUpstreamFixture.IsFinished);
        Assert.DoesNotContain("partial_json", record.GetProperty("request_body").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Control_WithoutPartialJson_NoEventCarriesParsed()
    {
        var (_, events) = await StreamAsync(_relay.Url, null, tokensPerSecond: 0);
        Assert.True(events[^1].IsDone, events[^1].Data);
        Assert.DoesNotContain(events, static e => e.Content.Length > 0 && Delta(e).TryGetProperty("parsed", out _));
    }

    [Fact]
    public async Task PartialJson_WithoutAJsonResponseFormat_AddsNothing()
    {
        using var request = SseRead.ChatRequest(_relay.Url, streamOptions: new { partial_json = true }, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "20",
        });
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
        Assert.DoesNotContain(events, static e => e.Content.Length > 0 && Delta(e).TryGetProperty("parsed", out _));
    }

    [Theory]
    [InlineData("3")]
    [InlineData("\"content\"")]
    [InlineData("null")]
    public async Task InvalidPartialJsonValue_Is400_BeforeTheUpstreamIsCalled(string value)
    {
        using var response = await _client.SendAsync(RawRequest(_relay.Url, $$"""{"partial_json":{{value}}}""", Format()));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.False(response.Headers.Contains("x-mock-request-id"));
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("invalid_value", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("partial_json", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"nonsense"}""")]
    [InlineData("""{"$ref":"https://example.com/elsewhere.json"}""")]
    [InlineData("""{"properties":[]}""")]
    [InlineData("42")]
    public async Task UnusableSchema_Is400_BeforeTheUpstreamIsCalled(string schema)
    {
        using var response = await _client.SendAsync(RawRequest(_relay.Url, "{}", Format(schema)));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.False(response.Headers.Contains("x-mock-request-id"));
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("schema", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnusableSchema_WithValidationOff_IsForwarded()
    {
        using var response = await _client.SendAsync(RawRequest(_relay.Url, """{"validate_schema":false}""", Format("""{"type":"nonsense"}""")),
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("x-mock-request-id"));
    }

    [Theory]
    [InlineData("type")]
    [InlineData("syntax")]
    [InlineData("extra-property")]
    [InlineData("enum")]
    public async Task SchemaViolation_CancelsTheUpstreamWithinOneFlushInterval_AndEndsWithASchemaViolationEvent(string violation)
    {
        var atToken = violation == "enum" ? 5 : 30;
        var caught = await TokenThatBreaksTheSchemaAsync(violation, atToken);
        // Warm: the measured stream pays for no JIT compilation of the paths it takes (it starts at 200 tokens/s).
        await StreamAsync(_relay.Url, null, 0, violation, atToken);

        // The fastest of five attempts, as for the other latency bounds on this shared machine: a loaded machine
        // delays some; the bound says what Relay does when it gets the CPU.
        var attempts = new List<string>();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var next = _sink.Next();
            var (response, events) = await StreamAsync(_relay.Url, null, TokensPerSecond, violation, atToken);

            var last = events[^1];
            Assert.True(last.IsError, last.Data);
            var error = last.Json.GetProperty("error");
            Assert.Equal("invalid_response", error.GetProperty("type").GetString());
            Assert.Equal("schema_violation", error.GetProperty("code").GetString());
            Assert.StartsWith("/", error.GetProperty("param").GetString(), StringComparison.Ordinal);
            Assert.DoesNotContain(events, static e => e.IsDone);

            // The upstream was cancelled: how many tokens it generated after the breaking one, and how long after.
            var id = response.Headers.GetValues("x-mock-request-id").Single();
            var record = await upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
            var generated = record.GetProperty("tokens_at_abort").GetInt32();
            var after = generated - (caught + 1);
            var ms = (record.GetProperty("aborted_us").GetInt64() - record.GetProperty("token_emit_us")[caught].GetInt64()) / 1000.0;

            var usage = await next.WaitAsync(Deadline.Default);
            Assert.Equal(StreamEndReason.SchemaViolation, usage.EndReason);
            Assert.InRange(usage.CompletionTokensGenerated, caught + 1, generated);

            // At 200 tokens/s one interval holds 4 tokens. A mock that fell behind its schedule sends its backlog in a
            // burst (more tokens than its rate in the same time): then the abort must come within one flush interval
            // of the breaking token leaving the mock.
            attempts.Add($"{after} tokens / {ms:F1} ms");
            if (after <= TokensPerInterval || ms <= FlushIntervalMs)
            {
                return;
            }
        }

        Assert.Fail($"after token {caught} broke the schema, the upstream generated (tokens after it / abort after it): {string.Join(", ", attempts)}");
    }

    [Fact]
    public async Task Control_ValidateSchemaFalse_TheDriftingReplyIsPaidForToTheEnd()
    {
        var (response, events) = await StreamAsync(_relay.Url, new { validate_schema = false }, tokensPerSecond: 0, "type", 30);
        Assert.True(events[^1].IsDone, events[^1].Data);
        var record = await upstream.WaitForRecordAsync(response.Headers.GetValues("x-mock-request-id").Single(), MockUpstreamFixture.IsFinished);
        Assert.Equal("completed", record.GetProperty("status").GetString());
        Assert.DoesNotContain("validate_schema", record.GetProperty("request_body").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RouteWithValidationOff_PassesTheDrift_ARequestTurnsItBackOn()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:StructuredOutput:Validate"] = "false" });
        var (_, off) = await StreamAsync(relay.Url, null, tokensPerSecond: 0, "type", 30);
        Assert.True(off[^1].IsDone, off[^1].Data);

        var (_, on) = await StreamAsync(relay.Url, new { validate_schema = true }, tokensPerSecond: 0, "type", 30);
        Assert.True(on[^1].IsError, on[^1].Data);
        Assert.Equal("schema_violation", on[^1].Json.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task WellBehavedReply_IsValidated_AndCompletes()
    {
        var next = _sink.Next();
        var (_, events) = await StreamAsync(_relay.Url, null, TokensPerSecond);
        Assert.True(events[^1].IsDone, events[^1].Data);
        Assert.DoesNotContain(events, static e => e.IsError);
        Assert.Equal(StreamEndReason.Completed, (await next.WaitAsync(Deadline.Default)).EndReason);
    }

    [Fact]
    public async Task KeywordNotCheckedWhileStreaming_IsValidatedAtCompletion_WithTheSameError()
    {
        // {"n": 3} against minimum 5: nothing is wrong until the document is whole.
        await using var scripted = new ScriptedSseUpstream(Script(["{\"n\"", ": 3", "}"]));
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        var events = await ReadRawAsync(relay.Url, """{"partial_json":true}""", Format("""{"type":"object","properties":{"n":{"type":"integer","minimum":5}}}"""));

        Assert.Equal("{\"n\": 3}", string.Concat(events.Select(static e => e.Content)));
        var error = events[^1].Json.GetProperty("error");
        Assert.Equal("schema_violation", error.GetProperty("code").GetString());
        Assert.Equal("/n", error.GetProperty("param").GetString());
        Assert.DoesNotContain(events, static e => e.IsDone);
    }

    [Fact]
    public async Task Control_KeywordNotCheckedWhileStreaming_ValidDocumentCompletes()
    {
        await using var scripted = new ScriptedSseUpstream(Script(["{\"n\"", ": 7", "}"]));
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        var events = await ReadRawAsync(relay.Url, "{}", Format("""{"type":"object","properties":{"n":{"type":"integer","minimum":5}}}"""));
        Assert.True(events[^1].IsDone, events[^1].Data);
    }

    [Fact]
    public async Task StopWithAnIncompleteDocument_IsASchemaViolation_ButALengthCutIsNot()
    {
        await using var stopped = new ScriptedSseUpstream(Script(["{\"n\"", ": 7"], "stop"));
        await using var relay = await InProcessRelay.StartAsync(stopped.Url);
        var events = await ReadRawAsync(relay.Url, "{}", Format(AnyObject));
        Assert.Equal("schema_violation", events[^1].Json.GetProperty("error").GetProperty("code").GetString());

        await using var cut = new ScriptedSseUpstream(Script(["{\"n\"", ": 7"], "length"));
        await using var relay2 = await InProcessRelay.StartAsync(cut.Url);
        events = await ReadRawAsync(relay2.Url, "{}", Format(AnyObject));
        Assert.True(events[^1].IsDone, events[^1].Data);
    }

    [Fact]
    public async Task JsonObject_IsCheckedForSyntaxAndAnObjectRoot()
    {
        await using var scripted = new ScriptedSseUpstream(Script(["[1,", "2]"]));
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        var events = await ReadRawAsync(relay.Url, "{}", """{"type":"json_object"}""");
        Assert.Equal("schema_violation", events[^1].Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("", events[^1].Json.GetProperty("error").GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("\"tool_calls\"", false, true)]
    [InlineData("\"all\"", true, true)]
    [InlineData("true", true, false)]
    public async Task PartialJson_ToolCallArguments_CarryParsedPerToolCall_OnRequest(string mode, bool content, bool tools)
    {
        static string Tool(int index, string? id, string args)
        {
            var head = id is null ? "" : $"\"id\":\"{id}\",\"type\":\"function\",";
            var name = id is null ? "" : "\"name\":\"f\",";
            return "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":"
                + index.ToString(CultureInfo.InvariantCulture) + "," + head + "\"function\":{" + name + "\"arguments\":" + JsonSerializer.Serialize(args)
                + "}}]},\"finish_reason\":null}]}";
        }

        var body = new StringBuilder();
        foreach (var chunk in new[]
        {
            Chunk("{\"a\":"), Chunk("1}"),
            Tool(0, "call_0", ""), Tool(0, null, "{\"city\":\"Par"), Tool(0, null, "is\"}"),
            Tool(1, "call_1", ""), Tool(1, null, "{\"n\":[1,"), Tool(1, null, "2]}"),
        })
        {
            body.Append("data: ").Append(chunk).Append("\n\n");
        }

        body.Append("data: ").Append(Finish("tool_calls")).Append("\n\ndata: [DONE]\n\n");
        await using var scripted = new ScriptedSseUpstream(body.ToString());
        await using var relay = await InProcessRelay.StartAsync(scripted.Url, new Dictionary<string, string?> { ["Relay:Cadence:Enabled"] = "false" });
        var events = await ReadRawAsync(relay.Url, $$"""{"partial_json":{{mode}}}""", Format(AnyObject));

        var contentParsed = events.Where(static e => e.Content.Length > 0).Select(static e => Delta(e).TryGetProperty("parsed", out var p) ? p.GetRawText() : null).ToList();
        Assert.Equal(content ? ["{}", "{\"a\":1}"] : [null, null], contentParsed);

        var toolParsed = new Dictionary<int, List<string?>>();
        foreach (var e in events.Where(static e => !e.IsDone && Delta(e).TryGetProperty("tool_calls", out _)))
        {
            var call = Delta(e).GetProperty("tool_calls")[0];
            if (call.GetProperty("function").GetProperty("arguments").GetString() is { Length: > 0 })
            {
                var index = call.GetProperty("index").GetInt32();
                (toolParsed.TryGetValue(index, out var list) ? list : toolParsed[index] = []).Add(
                    call.GetProperty("function").TryGetProperty("parsed", out var p) ? p.GetRawText() : null);
            }
        }

        Assert.Equal(tools ? ["{\"city\":\"Par\"}", "{\"city\":\"Paris\"}"] : [null, null], toolParsed[0]);
        Assert.Equal(tools ? ["{\"n\":[1]}", "{\"n\":[1,2]}"] : [null, null], toolParsed[1]);
    }

    /// <summary>The mock's reply streamed directly and through the validator: the index of the token the validator refuses.</summary>
    private async Task<int> TokenThatBreaksTheSchemaAsync(string violation, int atToken)
    {
        var (_, events) = await StreamAsync(upstream.Url, null, 0, violation, atToken);
        var tokens = events.Select(static e => e.Content).Where(static c => c.Length > 0).ToList();
        using var schema = JsonDocument.Parse(Schema);
        var validator = StructuredOutputValidator.TryCreate(schema.RootElement.Clone(), out _)!;
        var caught = tokens.FindIndex(t => !validator.TryAppend(Encoding.UTF8.GetBytes(t)));
        Assert.True(caught >= 0, $"the mock's {violation} reply is valid");
        return caught;
    }

    internal static JsonElement Delta(ReceivedEvent e) => e.Json.GetProperty("choices")[0].GetProperty("delta");

    private static string Format(string schema = Schema)
        => $$$"""{"type":"json_schema","json_schema":{"name":"customer","strict":true,"schema":{{{schema}}}}}""";

    private static string Chunk(string content)
        => $$"""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":{{JsonSerializer.Serialize(content)}}},"finish_reason":null}]}""";

    private static string Finish(string reason)
        => $$"""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"{{reason}}"}]}""";

    private static string Script(string[] contents, string finish = "stop")
        => string.Concat(contents.Select(static c => $"data: {Chunk(c)}\n\n")) + $"data: {Finish(finish)}\n\ndata: [DONE]\n\n";

    private static HttpRequestMessage RawRequest(string baseUrl, string streamOptions, string format, IDictionary<string, string>? headers = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, baseUrl.TrimEnd('/') + "/v1/chat/completions")
        {
            Content = new StringContent(
                $$$"""{"model":"mock","stream":true,"messages":[{"role":"user","content":"a customer"}],"stream_options":{{{streamOptions}}},"response_format":{{{format}}}}""",
                Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(k, v);
        }

        return request;
    }

    private async Task<List<ReceivedEvent>> ReadRawAsync(string baseUrl, string streamOptions, string format)
    {
        using var response = await _client.SendAsync(RawRequest(baseUrl, streamOptions, format), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await SseRead.ReadAllAsync(response);
    }

    /// <summary>A structured reply from the mock (seed 3), through <paramref name="baseUrl"/>.</summary>
    internal async Task<(HttpResponseMessage Response, List<ReceivedEvent> Events)> StreamAsync(
        string baseUrl, object? streamOptions, int tokensPerSecond, string? violation = null, int atToken = 0)
    {
        var headers = new Dictionary<string, string>
        {
            ["x-mock-reply"] = "json",
            ["x-mock-seed"] = "3",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture),
        };
        if (violation is not null)
        {
            headers["x-mock-json-violation"] = violation;
            headers["x-mock-json-violation-at-token"] = atToken.ToString(CultureInfo.InvariantCulture);
        }

        var options = streamOptions is null ? "{}" : JsonSerializer.Serialize(streamOptions);
        var response = await _client.SendAsync(RawRequest(baseUrl, options, Format(), headers), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (response, await SseRead.ReadAllAsync(response));
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using Json.Schema;

namespace MockInference.Tests;

/// <summary>
/// <c>x-mock-reply: json</c> with a <c>response_format.json_schema</c>: a document valid against the schema
/// (checked with JsonSchema.Net), deterministic per seed, tokenized with o200k like the text replies; and
/// <c>x-mock-json-violation</c>, which makes it go off-schema at a token.
/// </summary>
public sealed class StructuredReplyTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    internal const string Schema = """
        {
          "type": "object",
          "properties": {
            "name": { "type": "string", "maxLength": 12 },
            "age": { "type": "integer", "minimum": 18, "maximum": 99 },
            "score": { "type": "number", "exclusiveMinimum": 0, "maximum": 1 },
            "status": { "type": "string", "enum": ["active", "paused", "closed"] },
            "tags": { "type": "array", "items": { "type": "string" }, "maxItems": 4 },
            "address": { "$ref": "#/$defs/address" },
            "manager": { "anyOf": [{ "$ref": "#/$defs/person" }, { "type": "null" }] },
            "orders": {
              "type": "array",
              "minItems": 2,
              "items": {
                "type": "object",
                "properties": {
                  "id": { "type": "string", "format": "uuid" },
                  "total": { "type": "number" },
                  "paid": { "type": "boolean" },
                  "lines": { "type": "array", "items": { "$ref": "#/$defs/line" } }
                },
                "required": ["id", "total", "paid", "lines"],
                "additionalProperties": false
              }
            }
          },
          "required": ["name", "age", "score", "status", "tags", "address", "manager", "orders"],
          "additionalProperties": false,
          "$defs": {
            "address": {
              "type": "object",
              "properties": { "city": { "type": "string" }, "zip": { "type": ["string", "null"], "maxLength": 10 } },
              "required": ["city", "zip"],
              "additionalProperties": false
            },
            "person": {
              "type": "object",
              "properties": { "name": { "type": "string" }, "email": { "type": "string", "format": "email" } },
              "required": ["name", "email"],
              "additionalProperties": false
            },
            "line": {
              "type": "object",
              "properties": { "sku": { "type": "string", "minLength": 3 }, "qty": { "type": "integer", "minimum": 1 } },
              "required": ["sku", "qty"],
              "additionalProperties": false
            }
          }
        }
        """;

    private static readonly JsonSchema s_schema = JsonSchema.FromText(Schema);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(42)]
    [InlineData(1234)]
    public async Task JsonReplyWithSchema_IsValidAgainstTheSchema(int seed)
    {
        var content = await ContentAsync(seed);

        using var document = JsonDocument.Parse(content);
        Assert.True(s_schema.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List }).IsValid, content);
    }

    [Fact]
    public async Task JsonReplyWithSchema_IsDeterministicPerSeed()
    {
        Assert.Equal(await ContentAsync(7), await ContentAsync(7));
        Assert.NotEqual(await ContentAsync(7), await ContentAsync(8));
    }

    [Fact]
    public async Task JsonReplyWithSchema_IsTokenizedWithO200kLikeTextReplies()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, Request(seed: 5, includeUsage: true));
        var content = MockApi.Content(events);
        var usage = events.Where(e => !e.IsDone).Last().Json.GetProperty("usage");

        Assert.Equal(new MockTokenizer().Encode(content).Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(events.Count(e => !e.IsDone && e.Json.GetProperty("choices").GetArrayLength() > 0) > 50);
    }

    [Theory]
    [InlineData("syntax", 10)]
    [InlineData("syntax", 60)]
    [InlineData("type", 10)]
    [InlineData("type", 60)]
    [InlineData("extra-property", 10)]
    [InlineData("extra-property", 60)]
    [InlineData("enum", 0)]
    [InlineData("max-length", 0)]
    [InlineData("max-length", 40)]
    public async Task Violation_GoesOffSchemaAtTheToken_AfterTheSameTextAsTheValidReply(string violation, int atToken)
    {
        var valid = await ContentAsync(9);
        var drifted = await ContentAsync(9, violation, atToken);

        // The first N tokens are the valid reply's.
        var tokenizer = new MockTokenizer();
        var prefixBytes = tokenizer.Encode(valid).Take(atToken).Sum(id => tokenizer.GetTokenBytes(id).Length);
        var common = CommonPrefixLength(Encoding.UTF8.GetBytes(valid), Encoding.UTF8.GetBytes(drifted));
        Assert.True(common >= prefixBytes, $"diverges at byte {common}, before token {atToken} (byte {prefixBytes})");

        if (violation == "syntax")
        {
            Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(drifted));
            return;
        }

        using var document = JsonDocument.Parse(drifted);
        var results = s_schema.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.False(results.IsValid, drifted);
    }

    [Theory]
    [InlineData("x-mock-json-violation", "sideways", true)]
    [InlineData("x-mock-json-violation-at-token", "-1", true)]
    [InlineData("x-mock-json-violation", "type", false)]
    public async Task BadViolationHeaders_Are400NamingTheHeader(string header, string value, bool withSchema)
    {
        var request = withSchema
            ? Request(seed: 1, knobs: new() { [header] = value })
            : MockApi.Chat(knobs: new() { ["x-mock-reply"] = "json", [header] = value });
        var response = await server.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(header, error.GetProperty("param").GetString());
    }

    private async Task<string> ContentAsync(int seed, string? violation = null, int atToken = 0)
    {
        var knobs = new Dictionary<string, string>();
        if (violation is not null)
        {
            knobs["x-mock-json-violation"] = violation;
            knobs["x-mock-json-violation-at-token"] = atToken.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var (_, events) = await MockApi.StreamAsync(server.Client, Request(seed, knobs: knobs));
        return MockApi.Content(events);
    }

    internal static HttpRequestMessage Request(int seed, bool includeUsage = false, Dictionary<string, string>? knobs = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = "mock",
            ["stream"] = true,
            ["messages"] = new object[] { new { role = "user", content = "Describe a customer" } },
            ["response_format"] = new
            {
                type = "json_schema",
                json_schema = new { name = "customer", strict = true, schema = JsonDocument.Parse(Schema).RootElement },
            },
        };
        if (includeUsage)
        {
            body["stream_options"] = new { include_usage = true };
        }

        var all = new Dictionary<string, string>(knobs ?? []) { ["x-mock-reply"] = "json", ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        return MockApi.Post("/v1/chat/completions", JsonSerializer.Serialize(body), all);
    }

    private static int CommonPrefixLength(byte[] a, byte[] b) => a.AsSpan().CommonPrefixLength(b);
}

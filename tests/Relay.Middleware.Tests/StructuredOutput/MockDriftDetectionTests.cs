using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MockInference;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// MockInference drifts off-schema at a token (<c>x-mock-json-violation</c>); the validator, fed the streamed
/// content one token event at a time, catches each kind of drift within the tokens of the value that broke the
/// schema, and passes the well-behaved reply to its end.
/// </summary>
public sealed class MockDriftDetectionTests : IAsyncLifetime
{
    private const string Schema = """
        {
          "type": "object",
          "properties": {
            "name": { "type": "string", "maxLength": 12 },
            "status": { "type": "string", "enum": ["active", "paused", "closed"] },
            "tags": { "type": "array", "items": { "type": "string", "maxLength": 40 } },
            "orders": {
              "type": "array",
              "items": {
                "type": "object",
                "properties": { "id": { "type": "string" }, "total": { "type": "number" }, "note": { "type": "string", "maxLength": 8 } },
                "required": ["id", "total"],
                "additionalProperties": false
              }
            }
          },
          "required": ["name", "status", "tags", "orders"],
          "additionalProperties": false
        }
        """;

    private Microsoft.AspNetCore.Builder.WebApplication? _mock;
    private HttpClient? _client;

    public async Task InitializeAsync()
    {
        _mock = await MockInferenceServer.StartAsync();
        _client = new HttpClient { BaseAddress = new Uri(_mock.Urls.First()) };
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_mock is not null)
        {
            await _mock.DisposeAsync();
        }
    }

    [Fact]
    public async Task WellBehavedReply_PassesToItsEnd()
    {
        var validator = Validator();
        foreach (var token in await StreamAsync(violation: null, 0))
        {
            Assert.True(validator.TryAppend(Encoding.UTF8.GetBytes(token)), validator.Violation?.ToString());
        }

        Assert.True(validator.TryComplete(), validator.Violation?.ToString());
    }

    // "Late" counts from the first token that differs from the well-behaved reply. BPE merges across the point of
    // drift, so that token may still be a valid prefix (one more); a property name is known to be extra when its
    // closing quote arrives; a string too long must first grow past its maxLength (at most 40 in this schema).
    [Theory]
    [InlineData("syntax", 30, 1)]
    [InlineData("type", 30, 1)]
    [InlineData("enum", 5, 1)]
    [InlineData("extra-property", 30, 4)]
    [InlineData("max-length", 30, 40)]
    public async Task Drift_IsCaughtWithinTheTokensOfTheBrokenValue(string violation, int atToken, int maxTokensLate)
    {
        var valid = await StreamAsync(violation: null, 0);
        var drifted = await StreamAsync(violation, atToken);
        var diverged = Enumerable.Range(0, drifted.Count).First(i => i >= valid.Count || valid[i] != drifted[i]);

        var validator = Validator();
        var caught = Enumerable.Range(0, drifted.Count).FirstOrDefault(i => !validator.TryAppend(Encoding.UTF8.GetBytes(drifted[i])), -1);

        Assert.True(caught >= 0, "the drift was not caught");
        Assert.InRange(caught - diverged, 0, maxTokensLate);
        Assert.True(diverged >= atToken, $"diverged at token {diverged}");
    }

    private static StructuredOutputValidator Validator()
    {
        using var schema = JsonDocument.Parse(Schema);
        return StructuredOutputValidator.TryCreate(schema.RootElement.Clone(), out var error) ?? throw new InvalidOperationException(error);
    }

    /// <summary>The reply's content, one token event each (hold boundary: whole characters).</summary>
    private async Task<List<string>> StreamAsync(string? violation, int atToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new
            {
                model = "mock",
                stream = true,
                messages = new[] { new { role = "user", content = "a customer" } },
                response_format = new { type = "json_schema", json_schema = new { name = "customer", schema = JsonDocument.Parse(Schema).RootElement } },
            }),
        };
        request.Headers.Add("x-mock-reply", "json");
        request.Headers.Add("x-mock-seed", "3");
        request.Headers.Add("x-mock-ttft-ms", "0");
        request.Headers.Add("x-mock-tokens-per-second", "0");
        if (violation is not null)
        {
            request.Headers.Add("x-mock-json-violation", violation);
            request.Headers.Add("x-mock-json-violation-at-token", atToken.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var response = await _client!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        var tokens = new List<string>();
        foreach (var received in await SseTestReader.ReadAllAsync(await response.Content.ReadAsStreamAsync()))
        {
            if (received.Comment is not null || received.Data is not [(byte)'{', ..])
            {
                continue;
            }

            using var chunk = JsonDocument.Parse(received.Data);
            if (chunk.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                && choices[0].GetProperty("delta").TryGetProperty("content", out var content) && content.GetString() is { Length: > 0 } text)
            {
                tokens.Add(text);
            }
        }

        return tokens;
    }
}

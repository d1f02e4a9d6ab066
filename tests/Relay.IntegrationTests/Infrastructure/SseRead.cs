using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>One SSE event as a client received it, with the time it arrived (monotonic microseconds).</summary>
public sealed record ReceivedEvent(string Data, long ReceivedUs, string? Comment = null)
{
    public bool IsDone => Data == "[DONE]";

    public JsonElement Json => JsonDocument.Parse(Data).RootElement;

    /// <summary>Concatenated <c>choices[*].delta.content</c> of a chunk.</summary>
    public string Content
    {
        get
        {
            if (IsDone || Data.Length == 0 || Data[0] != '{')
            {
                return "";
            }

            var sb = new StringBuilder();
            if (Json.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array)
            {
                foreach (var c in choices.EnumerateArray())
                {
                    if (c.TryGetProperty("delta", out var d) && d.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    {
                        sb.Append(content.GetString());
                    }
                }
            }

            return sb.ToString();
        }
    }

    public bool IsError => Data.StartsWith("{\"error\"", StringComparison.Ordinal);
}

/// <summary>Reads Relay's event streams in tests (<see cref="Relay.Tests.Shared.SseTestReader"/>), each event timestamped on arrival.</summary>
public static class SseRead
{
    public static long NowUs() => Relay.Tests.Shared.SseTestReader.NowUs();

    /// <summary>Every event and comment until the stream ends or fails, or <paramref name="stopAfter"/> says so.</summary>
    public static async Task<List<ReceivedEvent>> ReadAllAsync(HttpResponseMessage response, CancellationToken ct = default, Func<ReceivedEvent, bool>? stopAfter = null)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var received = await Relay.Tests.Shared.SseTestReader.ReadAllAsync(stream, stopAfter is null ? null : r => stopAfter(ToEvent(r)), ct);
        return received.ConvertAll(ToEvent);
    }

    private static ReceivedEvent ToEvent(Relay.Tests.Shared.SseReceived r) => new(Encoding.UTF8.GetString(r.Data), r.ReceivedUs, r.Comment);

    public static HttpRequestMessage ChatRequest(string baseUrl, bool stream = true, object? streamOptions = null, IDictionary<string, string>? headers = null, string model = "mock", string path = "/v1/chat/completions")
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = model,
            ["messages"] = new[] { new { role = "user", content = "Say something." } },
            ["stream"] = stream,
        };
        if (streamOptions is not null)
        {
            body["stream_options"] = streamOptions;
        }

        var request = new HttpRequestMessage(HttpMethod.Post, baseUrl.TrimEnd('/') + path)
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(k, v);
        }

        return request;
    }
}

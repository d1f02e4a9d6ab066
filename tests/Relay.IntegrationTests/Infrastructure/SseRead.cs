using System.Diagnostics;
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

/// <summary>A minimal SSE reader for tests: LF framing as Relay writes it, each event timestamped on arrival.</summary>
public static class SseRead
{
    public static long NowUs() => (long)(Stopwatch.GetTimestamp() * (1_000_000.0 / Stopwatch.Frequency));

    public static async Task<List<ReceivedEvent>> ReadAllAsync(HttpResponseMessage response, CancellationToken ct = default, Func<ReceivedEvent, bool>? stopAfter = null)
    {
        var events = new List<ReceivedEvent>();
        await using var stream = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[8192];
        var pending = new List<byte>();
        while (true)
        {
            int n;
            try
            {
                n = await stream.ReadAsync(buffer, ct);
            }
            catch (IOException)
            {
                break;
            }

            if (n == 0)
            {
                break;
            }

            var now = NowUs();
            pending.AddRange(buffer.AsSpan(0, n).ToArray());
            while (true)
            {
                var idx = IndexOfBlankLine(pending);
                if (idx < 0)
                {
                    break;
                }

                var raw = Encoding.UTF8.GetString(pending.GetRange(0, idx).ToArray());
                pending.RemoveRange(0, idx + 2);
                var ev = Parse(raw, now);
                events.Add(ev);
                if (stopAfter?.Invoke(ev) == true)
                {
                    return events;
                }
            }
        }

        return events;
    }

    private static int IndexOfBlankLine(List<byte> bytes)
    {
        for (var i = 0; i + 1 < bytes.Count; i++)
        {
            if (bytes[i] == '\n' && bytes[i + 1] == '\n')
            {
                return i;
            }
        }

        return -1;
    }

    private static ReceivedEvent Parse(string raw, long now)
    {
        var data = new StringBuilder();
        string? comment = null;
        foreach (var line in raw.Split('\n'))
        {
            if (line.StartsWith(':'))
            {
                comment = line[1..].TrimStart();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                if (data.Length > 0)
                {
                    data.Append('\n');
                }

                data.Append(line.AsSpan(line.Length > 5 && line[5] == ' ' ? 6 : 5));
            }
        }

        return new ReceivedEvent(data.ToString(), now, comment);
    }

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

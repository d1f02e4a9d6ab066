using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace Relay.IntegrationTests.State;

/// <summary>One SSE event as a resuming client sees it: its id (the last event ID after it) and its data.</summary>
internal sealed record ResumedEvent(string? Id, string Data)
{
    public bool IsDone => Data == "[DONE]";

    public long Sequence => long.Parse(Id![(Id!.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);

    public string? ErrorCode => Data.StartsWith("{\"error\"", StringComparison.Ordinal)
        ? JsonDocument.Parse(Data).RootElement.GetProperty("error").GetProperty("code").GetString()
        : null;

    public string Content
    {
        get
        {
            if (IsDone || !Data.StartsWith('{'))
            {
                return "";
            }

            var root = JsonDocument.Parse(Data).RootElement;
            return root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String
                ? content.GetString()!
                : "";
        }
    }
}

/// <summary>Requests and reads of resumable streams, with the framework's WHATWG parser (ids as EventSource keeps them).</summary>
internal static class ResumeClient
{
    public static HttpRequestMessage Start(string relayUrl, IDictionary<string, string> knobs, bool resumable = true)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = "mock",
            ["stream"] = true,
            ["messages"] = new[] { new { role = "user", content = "Say something." } },
        };
        if (resumable)
        {
            body["stream_options"] = new { resumable = true };
        }

        var request = new HttpRequestMessage(HttpMethod.Post, relayUrl + "/v1/chat/completions") { Content = JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        foreach (var (name, value) in knobs)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    public static HttpRequestMessage Resume(string relayUrl, string streamId, string? lastEventId, string key = AuthTests.ClientKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"{relayUrl}/relay/v1/streams/{streamId}");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        return request;
    }

    public static HttpRequestMessage Cancel(string relayUrl, string streamId)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"{relayUrl}/relay/v1/streams/{streamId}/cancel");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        return request;
    }

    /// <summary>Reads events until the stream ends, or until <paramref name="take"/> events (then the caller cuts the connection).</summary>
    public static async Task<List<ResumedEvent>> ReadAsync(HttpResponseMessage response, int take = int.MaxValue, CancellationToken cancellationToken = default)
    {
        var events = new List<ResumedEvent>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var parser = SseParser.Create(stream);
        await foreach (var item in parser.EnumerateAsync(cancellationToken))
        {
            events.Add(new ResumedEvent(parser.LastEventId, item.Data));
            if (events.Count >= take)
            {
                break;
            }
        }

        return events;
    }

    /// <summary>The text MockInference generates for these knobs, read straight from it, at full pace.</summary>
    public static async Task<string> MockTextAsync(HttpClient client, string mockUrl, Dictionary<string, string> knobs)
    {
        var fast = new Dictionary<string, string>(knobs) { ["x-mock-tokens-per-second"] = "0" };
        using var response = await client.SendAsync(Infrastructure.SseRead.ChatRequest(mockUrl, headers: fast), HttpCompletionOption.ResponseHeadersRead);
        return string.Concat((await Infrastructure.SseRead.ReadAllAsync(response)).Select(static e => e.Content));
    }

    public static string Text(IEnumerable<ResumedEvent> events) => string.Concat(events.Select(static e => e.Content));
}

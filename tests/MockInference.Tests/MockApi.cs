using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace MockInference.Tests;

/// <summary>Builds requests to the mock with its knobs.</summary>
public static class MockApi
{
    public static HttpRequestMessage Chat(
        bool stream = true,
        bool includeUsage = false,
        int? n = null,
        int? maxTokens = null,
        string user = "Hello there",
        Dictionary<string, string>? knobs = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = "mock",
            ["stream"] = stream,
            ["messages"] = new object[] { new { role = "user", content = user } },
        };
        if (includeUsage)
        {
            body["stream_options"] = new { include_usage = true };
        }

        if (n is not null)
        {
            body["n"] = n;
        }

        if (maxTokens is not null)
        {
            body["max_tokens"] = maxTokens;
        }

        return Post("/v1/chat/completions", JsonSerializer.Serialize(body), knobs);
    }

    public static HttpRequestMessage Post(string path, string json, Dictionary<string, string>? knobs = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };

        // Fast by default; tests that measure timing set their own values.
        request.Headers.Add("x-mock-ttft-ms", "0");
        request.Headers.Add("x-mock-tokens-per-second", "0");
        foreach (var (name, value) in knobs ?? [])
        {
            request.Headers.Remove(name);
            request.Headers.Add(name, value);
        }

        return request;
    }

    public static async Task<(HttpResponseMessage Response, List<SseEvent> Events)> StreamAsync(
        HttpClient client, HttpRequestMessage request)
    {
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var events = await SseReader.ReadAllAsync(response);
        return (response, events);
    }

    /// <summary>The concatenated delta contents of one choice (hold mode: events are valid JSON).</summary>
    public static string Content(IEnumerable<SseEvent> events, int choice = 0)
    {
        var builder = new StringBuilder();
        foreach (var e in events.Where(e => !e.IsDone))
        {
            foreach (var c in e.Json.GetProperty("choices").EnumerateArray())
            {
                if (c.GetProperty("index").GetInt32() == choice
                    && c.GetProperty("delta").TryGetProperty("content", out var content))
                {
                    builder.Append(content.GetString());
                }
            }
        }

        return builder.ToString();
    }

    public static async Task<JsonElement> GetRecordAsync(HttpClient client, string id)
    {
        var json = await client.GetStringAsync($"/mock/requests/{id}");
        return JsonDocument.Parse(json).RootElement;
    }
}

using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.Containers;

/// <summary>What the container stack and the compose stack both have to show through their edge.</summary>
internal static class StackAssertions
{
    /// <summary>
    /// A stream paced at 5 tokens/s for 25 tokens through <paramref name="edgeUrl"/> arrives as it is produced:
    /// its first content event reaches the client before the upstream emits its last one (a buffering hop delivers it
    /// all after the end). An order of events, not a bound: the stream lasts 5 s, so however loaded the machine, an
    /// unbuffered stack has 5 s to deliver the first token and a buffering one cannot deliver it before the last.
    /// </summary>
    public static async Task StreamsIncrementallyAsync(string edgeUrl)
    {
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(edgeUrl, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "5",
            ["x-mock-max-tokens"] = "25",
            ["x-mock-ttft-ms"] = "0",
        });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone, $"the stream did not finish: {events[^1].Data}");
        var first = events.First(e => e.Content.Length > 0);
        var lastEmitted = events.Where(e => !e.IsDone).Max(e => e.Json.GetProperty("mock_emitted_us").GetInt64());
        Assert.True(first.ReceivedUs < lastEmitted, $"the stream was buffered somewhere in the stack: the first content arrived {(first.ReceivedUs - lastEmitted) / 1000} ms after the last token was emitted");
    }

    /// <summary>A WebSocket session through <paramref name="edgeUrl"/> streams one response to its end, completed.</summary>
    public static async Task BridgeWorksAsync(string edgeUrl)
    {
        await using var client = await BridgeClient.ConnectAsync(edgeUrl, new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-max-tokens"] = "20",
        });
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        var response = messages[^1].Json.GetProperty("response");
        Assert.True(response.GetProperty("status").GetString() == "completed", $"the response did not complete: {response}");
        Assert.Contains(messages, m => m.Content.Length > 0);
        Assert.Equal(string.Concat(messages.Where(m => m.Type == "response.chunk").Select(m => m.Content)), response.GetProperty("output_text").GetString());
    }
}

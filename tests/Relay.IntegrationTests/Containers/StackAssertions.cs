using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.Containers;

/// <summary>What the container stack and the compose stack both have to show through their edge.</summary>
internal static class StackAssertions
{
    /// <summary>
    /// A stream paced at 10 tokens/s for 25 tokens arrived as it was produced: its first content event reached
    /// the client more than 1.5 s before the upstream emitted its last one (a buffering hop would deliver it all at the end).
    /// </summary>
    public static void ArrivedIncrementally(List<ReceivedEvent> events)
    {
        Assert.True(events[^1].IsDone, $"the stream did not finish: {events[^1].Data}");
        var first = events.First(e => e.Content.Length > 0);
        var lastEmitted = events.Where(e => !e.IsDone).Max(e => e.Json.GetProperty("mock_emitted_us").GetInt64());
        Assert.True(lastEmitted - first.ReceivedUs > 1_500_000, "the stream was buffered somewhere in the stack");
    }

    /// <summary>A WebSocket session through <paramref name="edgeUrl"/> streams one response to its end.</summary>
    public static async Task BridgeWorksAsync(string edgeUrl)
    {
        await using var client = await BridgeClient.ConnectAsync(edgeUrl, new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "20",
        });
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        Assert.Contains(messages, m => m.Content.Length > 0);
    }
}

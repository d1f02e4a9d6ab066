using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// The playground's structured-output mode in a real headless Chromium renders the partial object
/// (<c>delta.parsed</c>) as it streams: fields appear before the stream ends, and the last value is the whole reply.
/// </summary>
public sealed class PlaygroundStructuredOutputTests(MockUpstreamFixture upstream)
    : RelayTestBase(upstream, new Dictionary<string, string?> { ["Relay:Playground:Enabled"] = "true" })
{
    [BrowserFact]
    public async Task Fetch_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => AssertRenderedLive(await BrowserDriver.RunAsync(Relay.Url, "structured", "fetch"));

    [BrowserFact]
    public async Task EventSource_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => AssertRenderedLive(await BrowserDriver.RunAsync(Relay.Url, "structured", "eventsource"));

    [BrowserFact]
    public async Task WebSocket_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => AssertRenderedLive(await BrowserDriver.RunAsync(Relay.Url, "structured", "websocket"));

    private static void AssertRenderedLive(JsonElement result)
    {
        Assert.True(result.GetProperty("status").GetString() == "done", result.ToString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());

        // The last rendered value is the reply's whole document.
        using var text = JsonDocument.Parse(result.GetProperty("text").GetString()!);
        using var parsed = JsonDocument.Parse(result.GetProperty("parsed").GetString()!);
        Assert.True(JsonElement.DeepEquals(text.RootElement, parsed.RootElement), result.GetProperty("parsed").GetString());
        var fields = text.RootElement.EnumerateObject().Count();

        // Fields appeared one after another, well before the stream ended (40 tokens/s: the reply takes seconds).
        var done = result.GetProperty("statusUpdates").EnumerateArray().Last(static s => s.GetProperty("text").GetString() == "done").GetProperty("t").GetDouble();
        var updates = result.GetProperty("parsedUpdates").EnumerateArray()
            .Select(static u => (T: u.GetProperty("t").GetDouble(), Fields: u.GetProperty("fields").GetInt32())).ToList();
        Assert.True(updates.Count > 10, $"only {updates.Count} renderings of the partial object");
        var firstField = updates.First(static u => u.Fields >= 1);
        Assert.True(done - firstField.T > 500, $"the first field appeared {done - firstField.T:F0} ms before the end");
        Assert.Contains(updates, u => u.Fields > 1 && u.Fields < fields && u.T < done - 200);
    }
}

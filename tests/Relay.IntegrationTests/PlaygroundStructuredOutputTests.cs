using System.Globalization;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// The playground's structured-output mode in a real headless Chromium renders the partial object
/// (<c>delta.parsed</c>) as it streams: fields appear before the stream ends, and the last value is the whole reply.
/// "Before the stream ends" is causal: the upstream holds the rest of the document until the page shows the first part.
/// </summary>
public sealed class PlaygroundStructuredOutputTests(MockUpstreamFixture upstream, BrowserServer browser)
    : RelayTestBase(upstream), IClassFixture<BrowserServer>
{
    private static readonly Dictionary<string, string?> Settings = new() { ["Relay:Playground:Enabled"] = "true" };

    // A reply that fits the page's default schema: two of its four fields come before the gate.
    private const string FirstPart = """{"title":"Fix the flaky build","priority":"urgent",""";
    private const string Rest = "\"labels\":[\"ci\",\"tests\"],\"steps\":[{\"n\":1,\"text\":\"Find the test\"},{\"n\":2,\"text\":\"Wait for the condition\"}]}";

    [BrowserFact]
    public Task Fetch_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds() => AssertRenderedLiveAsync("fetch");

    [BrowserFact]
    public Task EventSource_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds() => AssertRenderedLiveAsync("eventsource");

    [BrowserFact]
    public Task WebSocket_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds() => AssertRenderedLiveAsync("websocket");

    private async Task AssertRenderedLiveAsync(string mode)
    {
        // Pieces of a few characters, as a model's tokens come.
        var firstPart = Pieces(FirstPart);
        await using var gated = await GatedChatUpstream.StartAsync([.. firstPart, .. Pieces(Rest)], firstPart.Count, usage: true);
        await using var relay = await InProcessRelay.StartAsync(gated.Url, Settings);
        var result = await browser.RunAsync(relay.Url, "structured", mode, gated.GateUrl, FirstPart.Length.ToString(CultureInfo.InvariantCulture));

        Assert.True(result.GetProperty("status").GetString() == "done", result.ToString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());
        Assert.True(await gated.OpenedByClient);

        // The last rendered value is the reply's whole document.
        using var text = JsonDocument.Parse(result.GetProperty("text").GetString()!);
        using var parsed = JsonDocument.Parse(result.GetProperty("parsed").GetString()!);
        Assert.True(JsonElement.DeepEquals(text.RootElement, parsed.RootElement), result.GetProperty("parsed").GetString());
        Assert.Equal(FirstPart + Rest, result.GetProperty("text").GetString());

        // While the upstream held the rest, the page showed the partial object with the fields sent so far: the fields
        // appeared one after another, before the stream ended.
        var gate = result.GetProperty("gate");
        Assert.Equal(FirstPart, gate.GetProperty("text").GetString());
        Assert.Equal(2, gate.GetProperty("fields").GetInt32());
        Assert.Equal(4, text.RootElement.EnumerateObject().Count());
    }

    private static List<string> Pieces(string text) => [.. text.Chunk(4).Select(static c => new string(c))];
}

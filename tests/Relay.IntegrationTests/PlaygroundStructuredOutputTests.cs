using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cancellation;

namespace Relay.IntegrationTests;

/// <summary>
/// The playground's structured-output mode in a real headless Chromium renders the partial object
/// (<c>delta.parsed</c>) as it streams: fields appear before the stream ends, and the last value is the whole reply.
/// </summary>
public sealed class PlaygroundStructuredOutputTests(MockUpstreamFixture upstream)
    : RelayTestBase(upstream, new Dictionary<string, string?> { ["Relay:Playground:Enabled"] = "true" })
{
    private readonly TimedUsageSink _usage = new();

    protected override void ConfigureServices(IServiceCollection services) => services.AddSingleton<IStreamUsageSink>(_usage);

    [BrowserFact]
    public async Task Fetch_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => await AssertRenderedLiveAsync(await BrowserDriver.RunAsync(Relay.Url, "structured", "fetch"));

    [BrowserFact]
    public async Task EventSource_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => await AssertRenderedLiveAsync(await BrowserDriver.RunAsync(Relay.Url, "structured", "eventsource"));

    [BrowserFact]
    public async Task WebSocket_StructuredMode_RendersThePartialObject_FieldsAppearBeforeTheStreamEnds()
        => await AssertRenderedLiveAsync(await BrowserDriver.RunAsync(Relay.Url, "structured", "websocket"));

    private async Task AssertRenderedLiveAsync(JsonElement result)
    {
        Assert.True(result.GetProperty("status").GetString() == "done", result.ToString());
        Assert.Equal(0, result.GetProperty("consoleErrors").GetArrayLength());

        // The last rendered value is the reply's whole document.
        using var text = JsonDocument.Parse(result.GetProperty("text").GetString()!);
        using var parsed = JsonDocument.Parse(result.GetProperty("parsed").GetString()!);
        Assert.True(JsonElement.DeepEquals(text.RootElement, parsed.RootElement), result.GetProperty("parsed").GetString());
        var fields = text.RootElement.EnumerateObject().Count();

        // Fields appeared one after another before Relay ended the stream (an order on one clock, not a bound: the
        // page's times on the machine's monotonic clock, the stream's end noted by the usage sink).
        var (record, endedUs) = await _usage.FirstAsync(static r => r.EndReason == StreamEndReason.Completed);
        var updates = PlaygroundTests.PageUpdates(result, "parsedUpdates", static u => u.GetProperty("fields").GetInt32());
        PlaygroundTests.AssertOnOneClock(updates, record, endedUs);
        Assert.True(updates.Count > 10, $"only {updates.Count} renderings of the partial object");
        var firstField = updates.First(static u => u.Value >= 1);
        Assert.True(firstField.Us < endedUs, $"the first field appeared {(firstField.Us - endedUs) / 1000} ms after Relay ended the stream");
        Assert.Contains(updates, u => u.Value > 1 && u.Value < fields && u.Us < endedUs);
    }
}

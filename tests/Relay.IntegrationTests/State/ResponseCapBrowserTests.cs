using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.State;

/// <summary>
/// The issue's test, in headless Chromium: a 12 s generation behind an edge that cuts responses at 5 s, with Relay at
/// <c>Resume:MaxResponseSeconds</c> 4, ends in the page with the full text exactly once, and the upstream was called
/// once; the edge cut nothing, since every response ended before its cap.
/// </summary>
public sealed class ResponseCapBrowserTests(MockUpstreamFixture upstream, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<MockUpstreamFixture>
{
    [SkippableFact]
    public async Task EventSourceOnATicketUrl_12sGenerationBehindA5sEdgeCap_PageEndsWithTheFullTextOnce_UpstreamCalledOnce_NothingCut()
    {
        SkipUnlessReady();
        await using var stack = await CappedEdgeStack.StartAsync(upstream.Url, maxResponseSeconds: 4);
        var result = await CappedEdgeStack.RunNodeAsync(BrowserDriver.Directory!, "caps.mjs", ["eventsource", stack.Edge.Url, .. stack.ScriptArguments]);
        output.WriteLine($"EventSource: {result.GetProperty("opens")} responses, {result.GetProperty("ids").GetArrayLength()} events; edge: {stack.Edge.Requests} requests, {stack.Edge.Responses} responses ended, {stack.Edge.Cuts} cut");

        Assert.Equal(0, stack.Edge.Cuts);
        Assert.True(result.GetProperty("opens").GetInt32() >= 3, $"one response per 4 s of a 12 s stream: {result}");
        var ids = result.GetProperty("ids").EnumerateArray().Select(static i => i.GetString()!).ToList();
        Assert.Equal(Enumerable.Range(1, ids.Count).Select(static i => (long)i), ids.Select(static i => long.Parse(i[(i.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(await CappedEdgeStack.UncutTextAsync(upstream.Url), result.GetProperty("text").GetString());
        // A ticket replays no header ending in "key" (the mock's count key stays behind): one upstream request id among
        // every response, and the mock's record of it has the whole generation.
        var requestId = Assert.Single(result.GetProperty("requestIds").EnumerateArray().Select(static i => i.GetString()).Distinct());
        var record = await upstream.WaitForRecordAsync(requestId!, MockUpstreamFixture.IsFinished);
        Assert.Equal(CappedEdgeStack.MaxTokens, record.GetProperty("tokens_generated").GetInt32());
        Assert.False(MockUpstreamFixture.IsAborted(record), record.ToString());
        // Relay's own record: one stream relayed from the upstream, every token generated once.
        await WaitForUsageAsync(stack);
        Assert.Equal(CappedEdgeStack.MaxTokens, Assert.Single(stack.Usage).CompletionTokensGenerated);
    }

    [SkippableFact]
    public async Task Control_WithoutMaxResponseSeconds_TheEdgeCutsTheEventSourceResponse()
    {
        SkipUnlessReady();
        await using var stack = await CappedEdgeStack.StartAsync(upstream.Url, maxResponseSeconds: 0);
        var page = CappedEdgeStack.RunNodeAsync(BrowserDriver.Directory!, "caps.mjs", ["eventsource", stack.Edge.Url, .. stack.ScriptArguments]);
        // The stream still ends whole (EventSource resumes after a cut too), but only after the edge cut a response.
        await page;
        output.WriteLine($"edge: {stack.Edge.Requests} requests, {stack.Edge.Responses} responses ended, {stack.Edge.Cuts} cut");
        Assert.True(stack.Edge.Cuts >= 1, $"the edge cut {stack.Edge.Cuts} of {stack.Edge.Requests} responses");
    }

    [SkippableFact]
    public async Task PlaygroundFetchMode_12sGenerationBehindA5sEdgeCap_ShowsTheFullTextOnce_UpstreamCalledOnce_NothingCut()
    {
        SkipUnlessReady();
        await using var stack = await CappedEdgeStack.StartAsync(upstream.Url, maxResponseSeconds: 4);
        var result = await CappedEdgeStack.RunNodeAsync(BrowserDriver.Directory!, "caps.mjs", ["playground-fetch", stack.Edge.Url, .. stack.ScriptArguments]);
        output.WriteLine($"playground fetch: {result.GetProperty("resumes")} resumes; edge: {stack.Edge.Requests} requests, {stack.Edge.Responses} responses ended, {stack.Edge.Cuts} cut");

        Assert.Equal("done", result.GetProperty("status").GetString());
        Assert.Equal(0, stack.Edge.Cuts);
        Assert.True(result.GetProperty("resumes").GetInt32() >= 2, $"one response per 4 s of a 12 s stream: {result}");
        Assert.Equal(await CappedEdgeStack.UncutTextAsync(upstream.Url), result.GetProperty("text").GetString());
        Assert.Equal(1, await ResponseCapTests.UpstreamCallsAsync(upstream, stack.CountKey));
    }

    [SkippableTheory]
    [InlineData("fetch")]
    [InlineData("eventsource")]
    public async Task PlaygroundStop_OnAResumableStream_CancelsTheGeneration(string mode)
    {
        SkipUnlessReady();
        await using var stack = await CappedEdgeStack.StartAsync(upstream.Url, maxResponseSeconds: 4);
        var result = await CappedEdgeStack.RunNodeAsync(BrowserDriver.Directory!, "caps.mjs", ["playground-stop-" + mode, stack.Edge.Url, .. stack.ScriptArguments]);
        Assert.Equal("stopped", result.GetProperty("status").GetString());

        // A resumable stream does not stop when its client leaves (it would generate on for DetachedSeconds): Stop cancels it.
        await WaitForUsageAsync(stack);
        Assert.Equal(Relay.Middleware.Cancellation.StreamEndReason.CancelledByRequest, Assert.Single(stack.Usage).EndReason);
    }

    /// <summary>Waits for Relay's usage record of the stream (written when its relay loop ends, after the page's last event).</summary>
    private static async Task WaitForUsageAsync(CappedEdgeStack stack)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (stack.Usage.IsEmpty)
        {
            Assert.True(clock.Elapsed < Deadline.Default, "no usage record");
            await Task.Delay(10); // A bounded poll of the records, not a sleep.
        }
    }

    private static void SkipUnlessReady()
    {
        Skip.If(RedisProcess.Binary is null, RedisProcess.MissingReason);
        Skip.If(BrowserDriver.SkipReason is not null, BrowserDriver.SkipReason);
    }
}

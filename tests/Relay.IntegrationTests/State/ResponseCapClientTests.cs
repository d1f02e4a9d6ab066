using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.State;

/// <summary>
/// The npm <c>openai</c> SDK behind an edge that cuts responses at 5 s, with Relay at <c>Resume:MaxResponseSeconds</c>
/// 4: with <c>clients/js/relay-resumable-fetch.mjs</c> as its fetch it reads one uninterrupted 12 s stream; without
/// it, the stream stops at the first response's end.
/// </summary>
public sealed class ResponseCapClientTests(MockUpstreamFixture upstream, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<MockUpstreamFixture>
{
    private static readonly string? NodeFolder = NodeScript.FindFolder("openai-node", "resumable.mjs");

    [SkippableFact]
    public async Task NpmOpenAI_WithTheResumableFetch_12sGenerationBehindA5sEdgeCap_ReadsTheFullTextOnce_UpstreamCalledOnce_NothingCut()
    {
        await using var stack = await StartAsync(maxResponseSeconds: 4);
        var result = await RunAsync(stack, "helper");

        Assert.Equal(System.Text.Json.JsonValueKind.Null, result.GetProperty("error").ValueKind);
        Assert.Equal(0, stack.Edge.Cuts);
        Assert.True(result.GetProperty("resumes").GetArrayLength() >= 2, $"one response per 4 s of a 12 s stream: {result}");
        Assert.All(result.GetProperty("resumes").EnumerateArray(), r => Assert.Equal("ended", r.GetProperty("reason").GetString()));
        Assert.Equal(await CappedEdgeStack.UncutTextAsync(upstream.Url), result.GetProperty("content").GetString());
        Assert.Equal(1, await ResponseCapTests.UpstreamCallsAsync(upstream, stack.CountKey));
    }

    [SkippableFact]
    public async Task NpmOpenAI_WithTheResumableFetch_ResponsesCutByTheEdge_AreResumedToo_TextExact()
    {
        await using var stack = await StartAsync(maxResponseSeconds: 0); // No cap: the edge cuts the responses (wherever the bytes are).
        var result = await RunAsync(stack, "helper");

        Assert.True(stack.Edge.Cuts >= 1);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, result.GetProperty("error").ValueKind);
        Assert.Contains(result.GetProperty("resumes").EnumerateArray(), static r => r.GetProperty("reason").GetString() == "failed");
        Assert.Equal(await CappedEdgeStack.UncutTextAsync(upstream.Url), result.GetProperty("content").GetString());
        Assert.Equal(1, await ResponseCapTests.UpstreamCallsAsync(upstream, stack.CountKey));
    }

    [SkippableFact]
    public async Task Control_NpmOpenAI_WithoutTheHelper_ReadsATruncatedStream()
    {
        await using var stack = await StartAsync(maxResponseSeconds: 4);
        var result = await RunAsync(stack, "plain");

        var expected = await CappedEdgeStack.UncutTextAsync(upstream.Url);
        var content = result.GetProperty("content").GetString()!;
        Assert.True(content.Length > 0 && content.Length < expected.Length, $"{content.Length} of {expected.Length} characters");
        Assert.StartsWith(content, expected, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Control_NpmOpenAI_WithoutTheCap_TheEdgeCutsTheStream_AndTheSdkFails()
    {
        await using var stack = await StartAsync(maxResponseSeconds: 0);
        var result = await RunAsync(stack, "plain");

        Assert.True(stack.Edge.Cuts >= 1);
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, result.GetProperty("error").ValueKind);
    }

    private async Task<CappedEdgeStack> StartAsync(double maxResponseSeconds)
    {
        Skip.If(RedisProcess.Binary is null, RedisProcess.MissingReason);
        Skip.If(NodeFolder is null, "tests/openai-node not found next to the test assembly's repository.");
        Skip.If(!File.Exists(Path.Combine(NodeFolder, "node_modules", "openai", "package.json")),
            "tests/openai-node/node_modules is missing: run `npm ci` in tests/openai-node (.ci/run does).");
        Skip.If(NodeScript.Node is null, "node is not installed.");
        return await CappedEdgeStack.StartAsync(upstream.Url, maxResponseSeconds);
    }

    private async Task<System.Text.Json.JsonElement> RunAsync(CappedEdgeStack stack, string mode)
    {
        var result = await CappedEdgeStack.RunNodeAsync(NodeFolder!, "resumable.mjs", [mode, .. stack.ScriptArguments], new Dictionary<string, string> { ["RELAY_URL"] = stack.Edge.Url });
        output.WriteLine($"npm openai ({mode}): {result.GetProperty("chunks")} chunks, {result.GetProperty("content").GetString()!.Length} characters, {result.GetProperty("resumes").GetArrayLength()} resumes, error {result.GetProperty("error")}; edge: {stack.Edge.Requests} requests, {stack.Edge.Responses} responses ended, {stack.Edge.Cuts} cut");
        return result;
    }
}

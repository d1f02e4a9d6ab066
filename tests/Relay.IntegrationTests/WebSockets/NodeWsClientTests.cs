using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>
/// The same bridge scenarios with an independent client, the npm <c>ws</c> package
/// (tests/ws-client/scenarios.mjs, which asserts with node:assert and exits non-zero on a failure).
/// </summary>
public sealed class NodeWsClientTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, new Dictionary<string, string?>
{
    ["Relay:WebSocket:MaxMessageBytes"] = "4096",
})
{
    private static readonly string? ClientDirectory = NodeScript.FindFolder("ws-client", "scenarios.mjs");

    [SkippableTheory]
    [InlineData("full")]
    [InlineData("cutover")]
    [InlineData("cancel")]
    [InlineData("sequential")]
    [InlineData("malformed")]
    [InlineData("oversized")]
    public async Task NpmWsClient_RunsScenario(string scenario)
    {
        Skip.If(ClientDirectory is null, "tests/ws-client not found next to the test assembly's repository.");
        Skip.If(!File.Exists(Path.Combine(ClientDirectory, "node_modules", "ws", "package.json")),
            "tests/ws-client/node_modules is missing: run `npm ci` in tests/ws-client (.ci/run does).");
        Skip.If(NodeScript.Node is null, "node is not installed.");

        var (exitCode, stdout, stderr) = await NodeScript.RunAsync(ClientDirectory, "scenarios.mjs", [scenario], TimeSpan.FromSeconds(180),
            new Dictionary<string, string> { ["RELAY_URL"] = Relay.Url, ["MOCK_URL"] = Upstream.Url });
        Assert.True(exitCode == 0, $"node scenarios.mjs {scenario} exited {exitCode}:\n{stdout}\n{stderr}");
        Assert.Contains($"ok {scenario}", stdout);
    }
}

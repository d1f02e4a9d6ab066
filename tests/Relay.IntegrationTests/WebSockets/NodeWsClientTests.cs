using System.Diagnostics;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>
/// Issue 6: the same bridge scenarios with an independent client, the npm <c>ws</c> package
/// (tests/ws-client/scenarios.mjs, which asserts with node:assert and exits non-zero on a failure).
/// </summary>
[Collection(UpstreamCollection.Name)]
public sealed class NodeWsClientTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, new Dictionary<string, string?>
{
    ["Relay:WebSocket:MaxMessageBytes"] = "4096",
})
{
    private static readonly string? ClientDirectory = FindClientDirectory();

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
        Skip.If(!OnPath("node"), "node is not installed.");

        var start = new ProcessStartInfo("node", ["scenarios.mjs", scenario])
        {
            WorkingDirectory = ClientDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["RELAY_URL"] = Relay.Url;
        start.Environment["MOCK_URL"] = Upstream.Url;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        Assert.True(process.ExitCode == 0, $"node scenarios.mjs {scenario} exited {process.ExitCode}:\n{await stdout}\n{await stderr}");
        Assert.Contains($"ok {scenario}", await stdout);
    }

    private static string? FindClientDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "ws-client");
            if (File.Exists(Path.Combine(candidate, "scenarios.mjs")))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool OnPath(string command)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Any(p => File.Exists(Path.Combine(p, command)));
}

using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Configuration;

namespace Relay.IntegrationTests;

/// <summary>
/// Strict configuration: a key Relay does not read fails at start-up, in the <c>Relay</c> section, in a route's
/// <c>Relay.*</c> metadata and in a destination's, naming the key, where it was found and the nearest valid key; the
/// host prints one line per mistake instead of a stack trace. The table in docs/configuration.md lists every key with its scope.
/// </summary>
public sealed partial class StrictConfigurationTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private Dictionary<string, string?> Route(string metadataKey, string value) => new()
    {
        ["ReverseProxy:Routes:chat:ClusterId"] = "mock",
        ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
        [$"ReverseProxy:Routes:chat:Metadata:{metadataKey}"] = value,
        ["ReverseProxy:Clusters:mock:Destinations:one:Address"] = upstream.Url,
    };

    [Theory]
    [InlineData("Relay.Cadence.MaxToken", "'Cadence:MaxToken' is not a per-route setting; did you mean Relay.Cadence.MaxTokens?")]
    [InlineData("Relay.Compresion.Enabled", "did you mean Relay.Compression.Enabled?")]
    [InlineData("Relay.WebSocket.Enabled", "'WebSocket:Enabled' is a global setting: routes cannot override it")]
    [InlineData("Relay.Auth.QueryTokenAlias", "'Auth:QueryTokenAlias' is a global setting")]
    [InlineData("Relay.Tickets.Enabled", "'Tickets:Enabled' is a global setting")]
    public async Task RouteMetadataKeyRelayDoesNotReadPerRoute_FailsAtStartUp_WithTheRouteAndTheKey(string key, string expected)
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => PackageApp.StartAsync(Route(key, "false")));
        var message = Assert.Single(((AggregateException)failure.InnerException!).InnerExceptions).Message;
        Assert.Contains($"Route 'chat', metadata '{key}'", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Relay.Cadence.MaxTokens", "4")]
    [InlineData("Relay.Resilience.MaxAttempts", "1")]
    [InlineData("Relay.Resilience.BreakerFailures", "0")]
    [InlineData("Relay.Compression.Enabled", "true")]
    [InlineData("Relay.Cors.PassUpstreamHeaders", "true")]
    [InlineData("Relay.Cors.AllowedOrigins.0", "https://app.example")]
    [InlineData("Relay.Auth.Mode", "PassThrough")]
    [InlineData("relay.timeouts.idleseconds", "30")]
    [InlineData("Other.Anything", "someone else's")]
    public async Task RouteMetadataKeyRelayReadsPerRoute_Starts(string key, string value)
    {
        await using var app = await PackageApp.StartAsync(Route(key, value));
    }

    [Fact]
    public void EveryPerRouteSection_IsASectionOfRouteSettings_AndEveryPerRouteKeyIsAGlobalKeyToo()
    {
        Assert.Contains("Resilience:MaxAttempts", RelayConfigurationKeys.PerRoute);
        Assert.Contains("Compression:Enabled", RelayConfigurationKeys.PerRoute);
        Assert.Contains("Cors:AllowedOrigins:*", RelayConfigurationKeys.PerRoute);
        Assert.DoesNotContain("Auth:QueryTokenAlias", RelayConfigurationKeys.PerRoute);
        Assert.All(RelayConfigurationKeys.PerRoute, k => Assert.Contains(k, RelayConfigurationKeys.Global));
    }

    [Theory]
    [InlineData("Relay.ApiKeyHeadr", "did you mean Relay.ApiKeyHeader?")]
    [InlineData("Relay.Cadence.MaxTokens", "Relay reads no such key here")]
    public async Task DestinationMetadataKeyRelayDoesNotRead_FailsAtStartUp(string key, string expected)
    {
        var settings = Route("Other", "x");
        settings[$"ReverseProxy:Clusters:mock:Destinations:one:Metadata:{key}"] = "api-key";
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => PackageApp.StartAsync(settings));
        var message = Assert.Single(((AggregateException)failure.InnerException!).InnerExceptions).Message;
        Assert.Contains($"Cluster 'mock', destination 'one', metadata '{key}'", message, StringComparison.Ordinal);
        Assert.Contains(expected, message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownKeyInTheRelaySection_FailsAtStartUp_NamingItsSourceAndTheNearestKey()
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Cadence:MaxTokns"] = "4",
        }));
        Assert.Equal(
            "Relay:Cadence:MaxTokns (from MemoryConfigurationProvider) is not a Relay setting; did you mean Relay:Cadence:MaxTokens?",
            Assert.Single(failure.Failures));
    }

    [Fact]
    public async Task Host_UnknownKey_PrintsOneLine_NoStackTrace_AndExits1()
    {
        var (exitCode, stderr) = await RunHostAsync("--Relay:Cadence:MaxTokns", "4");
        Assert.Equal(1, exitCode);
        Assert.Equal(
            ["Relay configuration error: Relay:Cadence:MaxTokns (from CommandLineConfigurationProvider) is not a Relay setting; did you mean Relay:Cadence:MaxTokens?"],
            stderr);
    }

    [Fact]
    public async Task Host_RouteMetadataTypo_PrintsOneLine_NoStackTrace_AndExits1()
    {
        var (exitCode, stderr) = await RunHostAsync(
            "--ReverseProxy:Routes:chat:ClusterId", "mock", "--ReverseProxy:Routes:chat:Match:Path", "/v1/{**rest}",
            "--ReverseProxy:Routes:chat:Metadata:Relay.Cadence.MaxToken", "4",
            "--ReverseProxy:Clusters:mock:Destinations:one:Address", upstream.Url);
        Assert.Equal(1, exitCode);
        Assert.Equal(
            ["Relay configuration error: Route 'chat', metadata 'Relay.Cadence.MaxToken': 'Cadence:MaxToken' is not a per-route setting; did you mean Relay.Cadence.MaxTokens?"],
            stderr);
    }

    [Fact]
    public void ConfigurationTable_ListsEveryRelayKey_WithItsScope()
    {
        var reference = File.ReadAllText(Path.Combine(TestData.RepositoryRoot, "docs", "configuration.md"));
        var rows = TableRow().Matches(reference).Select(static m => (Key: m.Groups["key"].Value, Scope: m.Groups["scope"].Value)).ToList();
        Assert.NotEmpty(rows);
        foreach (var (key, scope) in rows)
        {
            Assert.True(RelayConfigurationKeys.IsKnown(key, RelayConfigurationKeys.Global) || RelayConfigurationKeys.IsSectionOf(key, RelayConfigurationKeys.Global), $"docs/configuration.md lists {key}, which Relay does not read.");
            var perRoute = RelayConfigurationKeys.IsKnown(key, RelayConfigurationKeys.PerRoute) || RelayConfigurationKeys.IsSectionOf(key, RelayConfigurationKeys.PerRoute);
            Assert.True(scope == (perRoute ? "route" : "global"), $"docs/configuration.md says {key} is {scope}.");
        }

        foreach (var key in RelayConfigurationKeys.Global)
        {
            Assert.True(rows.Any(r => RelayConfigurationKeys.IsKnown(key.Replace("*", "0", StringComparison.Ordinal), [r.Key]) || key.StartsWith(r.Key + ":", StringComparison.Ordinal)), $"docs/configuration.md's table lacks {key}.");
        }
    }

    [GeneratedRegex(@"^\| `(?<key>[A-Za-z:]+)` \| (?<scope>global|route) \|", RegexOptions.Multiline)]
    private static partial Regex TableRow();

    private static async Task<(int ExitCode, string[] Stderr)> RunHostAsync(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(DotnetProcess.BuiltDll("Relay"));
        foreach (var arg in (string[])["--urls", "http://127.0.0.1:0", .. args])
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["Logging__LogLevel__Default"] = "Warning";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await stdout;
        using var timeout = new CancellationTokenSource(Deadline.Default);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}

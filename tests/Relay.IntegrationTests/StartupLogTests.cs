using System.Net;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// A default start logs only what the user should act on. A newcomer's first start used to warn "No XML encryptor
/// configured. Key ... may be persisted to storage in unencrypted form": YARP adds ASP.NET Core Data Protection (for
/// session affinity, which a default configuration does not use) and its hosted service created a key at start.
/// </summary>
public sealed class StartupLogTests(MockUpstreamFixture upstream) : IDisposable, IClassFixture<MockUpstreamFixture>
{
    // A home of its own: a first start, with no Data Protection key ring yet (the machine's own may hold one).
    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("relay-home-");

    public void Dispose() => _home.Delete(recursive: true);

    [Fact]
    public async Task FirstStart_WithADefaultConfiguration_LogsNoWarning_AndCreatesNoDataProtectionKey()
    {
        var output = await StartAndStopAsync();

        Assert.DoesNotContain(output.Split('\n'), static line => line.StartsWith("warn:", StringComparison.Ordinal)
            || line.StartsWith("fail:", StringComparison.Ordinal) || line.StartsWith("crit:", StringComparison.Ordinal));
        Assert.Empty(_home.EnumerateFiles("*.xml", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task SessionAffinity_StillGetsDataProtection_OnFirstUse()
    {
        // YARP's session affinity is what Data Protection is there for: its cookie is protected with a key made on use.
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:chat:ClusterId"] = "sticky",
            ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
            ["ReverseProxy:Clusters:sticky:SessionAffinity:Enabled"] = "true",
            ["ReverseProxy:Clusters:sticky:SessionAffinity:AffinityKeyName"] = "relay-affinity",
            ["ReverseProxy:Clusters:sticky:Destinations:one:Address"] = upstream.Url,
            ["ReverseProxy:Clusters:sticky:Destinations:two:Address"] = upstream.Url,
        });
        using var client = new HttpClient();

        using var response = await client.SendAsync(SseRead.ChatRequest(relay.Url, stream: false, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0" }));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(response.Headers.GetValues("Set-Cookie"), static c => c.StartsWith("relay-affinity=", StringComparison.Ordinal));
    }

    /// <summary>
    /// Starts Relay from its build output in front of the simulated upstream and returns its console output up to
    /// "Application started." (logged once every hosted service has started, after anything they logged).
    /// </summary>
    private async Task<string> StartAndStopAsync()
    {
        await using var relay = await RelayChildProcess.StartAsync(upstream.Url, new Dictionary<string, string>
        {
            ["HOME"] = _home.FullName,
            ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
        });
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!relay.Output.Contains("Application started.", StringComparison.Ordinal))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), deadline.Token);
        }

        return relay.Output;
    }
}

using Microsoft.Extensions.Options;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Configuration;
using Relay.Middleware.Hosting;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.IntegrationTests;

/// <summary>Configuration: YARP's activity timeout left to Relay, per-route overrides, validation at start-up.</summary>
public sealed class ConfigurationTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    [Fact]
    public async Task ClusterWithoutActivityTimeout_GetsOneLongerThanAnyStream()
    {
        // YARP's default (100 s of silence) would cut a reasoning model's pause; Relay's own timeouts govern.
        var filter = new RelayClusterConfigFilter();
        var cluster = await filter.ConfigureClusterAsync(new ClusterConfig { ClusterId = "c" }, default);
        Assert.Equal(TimeSpan.FromDays(1), cluster.HttpRequest!.ActivityTimeout);

        var explicitTimeout = new ClusterConfig { ClusterId = "c", HttpRequest = new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromSeconds(5) } };
        Assert.Equal(TimeSpan.FromSeconds(5), (await filter.ConfigureClusterAsync(explicitTimeout, default)).HttpRequest!.ActivityTimeout);
    }

    [Fact]
    public void RouteMetadata_OverridesTheDefaults()
    {
        var defaults = new RelayOptions();
        var route = new RouteConfig
        {
            RouteId = "r",
            Metadata = new Dictionary<string, string> { ["Relay.Cadence.MaxTokens"] = "3", ["Relay.Timeouts.IdleSeconds"] = "300", ["Other"] = "someone else's" },
        };
        var settings = RouteSettings.Resolve(defaults, route);
        Assert.Equal(3, settings.Cadence.MaxTokens);
        Assert.Equal(20, settings.Cadence.IntervalMs);
        Assert.Equal(300, settings.Timeouts.IdleSeconds);
        Assert.Equal(8, defaults.Cadence.MaxTokens);
    }

    [Fact]
    public void RouteMetadata_OverridesAuthHeartbeatAndCors_AndAListReplacesTheDefaultList()
    {
        var defaults = new RelayOptions { Cors = new CrossOriginOptions { AllowedOrigins = ["https://default.example"] } };
        var route = new RouteConfig
        {
            RouteId = "r",
            Metadata = new Dictionary<string, string>
            {
                ["Relay.Auth.Mode"] = "RelayKeys",
                ["Relay.Heartbeat.IntervalSeconds"] = "2",
                ["Relay.Cors.AllowedOrigins.0"] = "https://app.example",
            },
        };
        var settings = RouteSettings.Resolve(defaults, route);
        Assert.Equal(RelayAuthMode.RelayKeys, settings.Auth.Mode);
        Assert.Equal(2, settings.Heartbeat.IntervalSeconds);
        Assert.Equal(["https://app.example"], settings.Cors.AllowedOrigins);
        Assert.Equal("r", settings.RouteId);
        Assert.Equal(RelayAuthMode.PassThrough, defaults.Auth.Mode);
        Assert.Equal(["https://default.example"], defaults.Cors.AllowedOrigins);
    }

    [Theory]
    [InlineData("Relay:RelayKeys:0:Sha256", "not-a-hash")]
    [InlineData("Relay:Tickets:SigningKey", "c2hvcnQ=")]
    [InlineData("Relay:Tickets:LifetimeSeconds", "0")]
    [InlineData("Relay:Heartbeat:IntervalSeconds", "-1")]
    [InlineData("Relay:Auth:Mode", "Sometimes")]
    public async Task BadEdgeSettings_FailAtStartUp(string key, string value)
    {
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { [key] = value });
        });
    }

    [Fact]
    public async Task RouteMetadata_CadenceApplies_EndToEnd()
    {
        // A full YARP configuration whose route asks for every token as it comes.
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:chat:ClusterId"] = "mock",
            ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
            ["ReverseProxy:Routes:chat:Metadata:Relay.Cadence.MaxTokens"] = "1",
            ["ReverseProxy:Clusters:mock:Destinations:one:Address"] = upstream.Url,
        });
        using var client = new HttpClient();
        var headers = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "40", ["x-mock-seed"] = "3" };
        using var viaRelay = await client.SendAsync(SseRead.ChatRequest(relay.Url, headers: headers), HttpCompletionOption.ResponseHeadersRead);
        using var direct = await client.SendAsync(SseRead.ChatRequest(upstream.Url, headers: headers), HttpCompletionOption.ResponseHeadersRead);
        var relayed = (await SseRead.ReadAllAsync(viaRelay)).Count(e => e.Content.Length > 0);
        Assert.Equal((await SseRead.ReadAllAsync(direct)).Count(e => e.Content.Length > 0), relayed);
    }

    [Fact]
    public async Task UnknownOrInvalidSetting_FailsAtStartup()
    {
        await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Cadence:MaxTokens"] = "0" });
        });
        await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Cadence:MaxTokns"] = "4" });
        });
    }
}

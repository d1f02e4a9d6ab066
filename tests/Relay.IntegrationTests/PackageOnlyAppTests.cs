using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Hosting;

namespace Relay.IntegrationTests;

/// <summary>
/// The package does what the host does: an app that adds only <c>Relay.Middleware</c> (<see cref="PackageApp"/>) and
/// is configured only through <c>Relay</c> keys gets every setting the host honours. Each control shows the same app
/// without the setting (or without Relay), where the host's behaviour would be missing.
/// </summary>
public sealed class PackageOnlyAppTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private static readonly Dictionary<string, string> Quick = new() { ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "5" };

    [Fact]
    public async Task UpstreamBaseUrl_WithoutAReverseProxySection_StreamsThroughTheDefaultRoute()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url + "/v1" });
        using var client = new HttpClient();
        using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
    }

    [Fact]
    public async Task Control_NoBaseUrlAndNoRoutes_Gets404_AndAStartUpWarningSaysWhatToSet()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>());
        using var client = new HttpClient();
        await ErrorTests.AssertErrorAsync(await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick)), 404, "invalid_request_error", "unknown_route");
        var warning = Assert.Single(app.Logs.GetSnapshot(), r => r.Id.Name == "NoRoutes");
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("Relay:Upstream:BaseUrl", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BaseUrlNextToReverseProxyRoutes_TheRoutesWin_AndAWarningSaysTheBaseUrlIsUnused()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = "http://127.0.0.1:9",
            ["ReverseProxy:Routes:chat:ClusterId"] = "mock",
            ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
            ["ReverseProxy:Clusters:mock:Destinations:one:Address"] = upstream.Url,
        });
        using var client = new HttpClient();
        using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(app.Logs.GetSnapshot(), r => r.Id.Name == "UpstreamBaseUrlUnused");
    }

    [Fact]
    public async Task AddRelayWithAnAction_ConfiguresLikeTheSection()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>(), builder =>
        {
            builder.Services.AddRelay(o => o.Upstream.BaseUrl = upstream.Url);
            builder.Services.AddReverseProxy().AddRelayTransforms();
        });
        using var client = new HttpClient();
        using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick), HttpCompletionOption.ResponseHeadersRead);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
    }

    [Fact]
    public async Task BackpressureMaxBufferedBytes_IsKestrelsResponseBuffer_AndNoServerHeader()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Backpressure:MaxBufferedBytes"] = "4096",
        });
        var kestrel = app.App.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value;
        Assert.Equal(4096, kestrel.Limits.MaxResponseBufferSize);
        using var client = new HttpClient();
        using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick));
        Assert.Empty(response.Headers.Server);

        // Control: the same app without Relay keeps Kestrel's defaults.
        await using var plain = await PackageApp.StartAsync(new Dictionary<string, string?>(), static _ => { }, static a => a.MapGet("/", () => "ok"));
        Assert.Equal(64 * 1024, plain.App.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits.MaxResponseBufferSize);
        Assert.NotEmpty((await client.GetAsync(plain.Url + "/")).Headers.Server);
    }

    [Fact]
    public async Task ShutdownDrainSeconds_TheHostWaitsForTheDrainAndTheFinalEvents()
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Shutdown:DrainSeconds"] = "45",
        });
        Assert.Equal(TimeSpan.FromSeconds(45) + RelayHostOptionsSetup.FinalEventsAllowance, app.App.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);

        // Control: without Relay the host's default (30 s) would cut a 45 s drain short.
        await using var plain = await PackageApp.StartAsync(new Dictionary<string, string?>(), static _ => { }, static a => a.MapGet("/", () => "ok"));
        Assert.Equal(TimeSpan.FromSeconds(30), plain.App.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout);
    }

    [Fact]
    public async Task ShutdownDrainSeconds_AStreamInFlightEndsWithRelayShutdown()
    {
        var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Shutdown:DrainSeconds"] = "0.2",
        });
        using var client = new HttpClient();
        var slow = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "5", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "500" };
        using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: slow), HttpCompletionOption.ResponseHeadersRead);
        var reading = SseRead.ReadAllAsync(response);
        await app.DisposeAsync();
        var events = await reading;
        Assert.True(events[^1].IsError, events[^1].Data);
        Assert.Equal("relay_shutdown", events[^1].Json.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task TelemetryOtlpEndpoint_ExportsTheRelayMeterAndTheStreamLog()
    {
        await using var collector = await OtlpCollector.StartAsync();
        var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Telemetry:OtlpEndpoint"] = collector.Url,
            ["Relay:Telemetry:MetricExportIntervalMs"] = "200",
        });
        try
        {
            Assert.NotNull(app.App.Services.GetService<MeterProvider>());
            using var client = new HttpClient();
            using var response = await client.SendAsync(SseRead.ChatRequest(app.Url, headers: Quick), HttpCompletionOption.ResponseHeadersRead);
            Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);

            // Recorded as the stream ends, after the client has [DONE]: wait for the periodic export that carries it.
            await collector.WaitForAsync("/v1/metrics", "relay.streams");
        }
        finally
        {
            // Stopping the host flushes both exporters.
            await app.DisposeAsync();
        }

        await collector.WaitForAsync("/v1/logs", "StreamEnded");

        // Control: no endpoint, no exporter.
        await using var quiet = await PackageApp.StartAsync(new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url });
        Assert.Null(quiet.App.Services.GetService<MeterProvider>());
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("false", false)]
    [InlineData(null, false)]
    public async Task PlaygroundEnabled_DecidesWhetherThePageIsServed(string? enabled, bool served)
    {
        await using var app = await PackageApp.StartAsync(new Dictionary<string, string?>
        {
            ["Relay:Upstream:BaseUrl"] = upstream.Url,
            ["Relay:Playground:Enabled"] = enabled,
        });
        using var client = new HttpClient();
        using var page = await client.GetAsync(app.Url + "/");
        if (served)
        {
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        }
        else
        {
            await ErrorTests.AssertErrorAsync(page, 404, "invalid_request_error", "unknown_route");
        }
    }

    [Fact]
    public async Task PlaygroundDisabled_AnExplicitMapRelayPlayground_MapsNothing()
    {
        await using var app = await PackageApp.StartAsync(
            new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url, ["Relay:Playground:Enabled"] = "false" },
            map: static a =>
            {
                a.MapRelayPlayground();
                a.MapRelay();
            });
        using var client = new HttpClient();
        await ErrorTests.AssertErrorAsync(await client.GetAsync(app.Url + "/"), 404, "invalid_request_error", "unknown_route");
    }

    [Fact]
    public async Task WithoutTheCorsIntegration_TheAppsProviderStays_AndRelayCorsSettingsAreRefused()
    {
        void Services(WebApplicationBuilder builder)
        {
            builder.Services.AddRelay(builder.Configuration.GetSection("Relay"), RelayHostIntegration.QueryTokenRedactingServer);
            builder.Services.AddReverseProxy().AddRelayTransforms();
        }

        await using (var app = await PackageApp.StartAsync(new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url }, Services))
        {
            Assert.IsType<Microsoft.AspNetCore.Cors.Infrastructure.DefaultCorsPolicyProvider>(app.App.Services.GetRequiredService<Microsoft.AspNetCore.Cors.Infrastructure.ICorsPolicyProvider>());
        }

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => PackageApp.StartAsync(
            new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url, ["Relay:Cors:AllowedOrigins:0"] = "https://app.example" }, Services));
        Assert.Contains("RelayHostIntegration.CorsPolicyProvider", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutTheServerIntegration_TheAppsServerStays_AndQueryTokensAreRefused()
    {
        void Services(WebApplicationBuilder builder)
        {
            builder.Services.AddRelay(builder.Configuration.GetSection("Relay"), RelayHostIntegration.CorsPolicyProvider);
            builder.Services.AddReverseProxy().AddRelayTransforms();
        }

        await using (var app = await PackageApp.StartAsync(new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url }, Services))
        {
            Assert.Equal("KestrelServerImpl", app.App.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().GetType().Name);
        }

        await Assert.ThrowsAsync<OptionsValidationException>(() => PackageApp.StartAsync(
            new Dictionary<string, string?> { ["Relay:Upstream:BaseUrl"] = upstream.Url, ["Relay:Auth:QueryToken"] = "true" }, Services));
    }
}

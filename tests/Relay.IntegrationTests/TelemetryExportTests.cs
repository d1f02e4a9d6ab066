using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Usage metrics and the per-stream log record are exportable over OTLP when an endpoint is configured, and
/// nothing is exported by default. The collector is a real HTTP server on loopback that records what it receives.
/// </summary>
public sealed class TelemetryExportTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private const string Secret = "sk-otlp-secret-4d1f";

    [Fact]
    public async Task OtlpEndpointSet_ExportsGenAiMetricsAndStreamLog_WithoutSecrets()
    {
        await using var collector = await OtlpCollector.StartAsync();
        var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Telemetry:OtlpEndpoint"] = collector.Url,
            ["Relay:Telemetry:MetricExportIntervalMs"] = "200",
        });
        try
        {
            Assert.NotNull(relay.App.Services.GetService<MeterProvider>());
            using var client = new HttpClient();
            using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string>
            {
                ["Authorization"] = $"Bearer {Secret}", ["x-mock-tokens-per-second"] = "0", ["x-mock-max-tokens"] = "5",
            });
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var events = await SseRead.ReadAllAsync(response);
            Assert.True(events[^1].IsDone);

            // The stream's metrics are recorded as it ends, after the client has [DONE]: wait for the periodic export
            // (every 200 ms) that carries them, not for a time.
            await collector.WaitForAsync("/v1/metrics", "gen_ai.client.token.usage", "gen_ai.server.time_to_first_token", "relay.streams");
        }
        finally
        {
            // Stopping the host flushes both exporters: the log record goes then, if its batch has not gone yet.
            await relay.DisposeAsync();
        }

        await collector.WaitForAsync("/v1/logs", "StreamEnded");
        var metrics = collector.Received("/v1/metrics");
        var logs = collector.Received("/v1/logs");
        Assert.Contains("gen_ai.client.token.usage", metrics, StringComparison.Ordinal);
        Assert.Contains("gen_ai.server.time_to_first_token", metrics, StringComparison.Ordinal);
        Assert.Contains("relay.streams", metrics, StringComparison.Ordinal);
        Assert.Contains("StreamEnded", logs, StringComparison.Ordinal);
        Assert.DoesNotContain(Secret, metrics + logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoEndpoint_NothingIsExported()
    {
        var relay = await InProcessRelay.StartAsync(upstream.Url);
        try
        {
            Assert.Null(relay.App.Services.GetService<MeterProvider>());
            Assert.DoesNotContain(relay.App.Services.GetServices<ILoggerProvider>(), p => p.GetType().FullName!.StartsWith("OpenTelemetry", StringComparison.Ordinal));
        }
        finally
        {
            await relay.DisposeAsync();
        }
    }
}

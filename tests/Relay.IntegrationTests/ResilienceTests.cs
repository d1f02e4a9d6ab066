using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;
using Xunit.Abstractions;

namespace Relay.IntegrationTests;

/// <summary>
/// Retries only before the first byte, failover across a cluster's destinations, a circuit breaker
/// per destination. The simulated upstream's <c>x-mock-fail-times</c>/<c>x-mock-fail-key</c> make "N failures, then
/// success", and its <c>/mock/fail-keys/{key}</c> count is the upstream's own record of the attempts.
/// </summary>
public sealed class ResilienceTests(MockUpstreamFixture upstream, ITestOutputHelper output) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    private readonly HttpClient _client = new();
    private readonly RecordSink _sink = new();
    private InProcessRelay _relay = null!;

    public async Task InitializeAsync()
        => _relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Resilience:MaxAttempts"] = "3",
            ["Relay:Resilience:MaxRetryAfterSeconds"] = "2",
        }, services: s => s.AddSingleton<IStreamUsageSink>(_sink));

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _relay.DisposeAsync();
    }

    [Fact]
    public async Task Upstream429WithRetryAfter1_IsRetriedAfterOneSecond_TheClientSeesOnlyTheStream()
    {
        var key = NewKey();
        using var metrics = new MetricCollector<int>(_relay.App.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), RelayMetrics.MeterName, "relay.upstream.attempts");
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(SseRead.ChatRequest(_relay.Url, headers: FailFirst(key, 1, 429)), HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        // A lower bound the rule guarantees by construction (the retry waits for a 1 s timer), so it cannot flake.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.95), $"Retry-After: 1 was not honoured: {clock.Elapsed}");
        Assert.Contains(events, e => e.Content.Length > 0);
        Assert.True(events[^1].IsDone);
        Assert.DoesNotContain(events, e => e.IsError);
        Assert.Equal(2, await UpstreamCountAsync(key));

        var record = await _sink.NextAsync();
        Assert.Equal(2, record.UpstreamAttempts);
        Assert.Equal(["upstream", "upstream"], record.UpstreamDestinations);
        var measurement = Assert.Single(metrics.GetMeasurementSnapshot());
        Assert.Equal(2, measurement.Value);
        Assert.Equal("response", measurement.Tags["relay.upstream.outcome"]);
    }

    [Fact]
    public async Task Two503sWithRetryAfter_ThenSuccess_ThreeUpstreamAttempts()
    {
        var key = NewKey();
        using var response = await _client.SendAsync(SseRead.ChatRequest(_relay.Url, headers: FailFirst(key, 2, 503)), HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
        Assert.Equal(3, await UpstreamCountAsync(key));
        Assert.Equal(3, (await _sink.NextAsync()).UpstreamAttempts);
    }

    [Fact]
    public async Task Control_WithMaxAttempts1_The429ReachesTheClient()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Resilience:MaxAttempts"] = "1" });
        var key = NewKey();
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 1, 429)));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(1, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task RetryAfterLongerThanTheRouteCap_IsPassedToTheClientAtOnce()
    {
        // Relay's clock never moves: any wait (Retry-After or backoff) would hold the answer until the deadline.
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Resilience:MaxRetryAfterSeconds"] = "0.5" },
            services: s => s.AddSingleton<TimeProvider>(new FakeTimeProvider(DateTimeOffset.UtcNow)));
        var key = NewKey();
        using var deadline = new CancellationTokenSource(Deadline.Default);
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 1, 429)), deadline.Token);
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
        Assert.Equal(1, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task Upstream400_IsNeverRetried()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Resilience:RetryAmbiguousFailures"] = "true" });
        var key = NewKey();
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 5, 400)));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(1, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task Upstream503WithRetryAfter_ByDefault_But502_OnlyWithRetryAmbiguousFailures()
    {
        var key = NewKey();
        using var response = await _client.SendAsync(SseRead.ChatRequest(_relay.Url, headers: FailFirst(key, 1, 502)));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(1, await UpstreamCountAsync(key));

        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Resilience:RetryAmbiguousFailures"] = "true" });
        var retried = NewKey();
        using var second = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(retried, 1, 502)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(second))[^1].IsDone);
        Assert.Equal(2, await UpstreamCountAsync(retried));
    }

    [Fact]
    public async Task FailureAfterTheFirstToken_EndsWithAnErrorEvent_AndExactlyOneAttempt()
    {
        var key = NewKey();
        var headers = Fast(key);
        headers["x-mock-fail-after-tokens"] = "5";
        headers["x-mock-fail-mode"] = "reset";
        using var response = await _client.SendAsync(SseRead.ChatRequest(_relay.Url, headers: headers), HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.Contains(events, e => e.Content.Length > 0);
        Assert.True(events[^1].IsError, events[^1].Data);
        Assert.Equal(1, await UpstreamCountAsync(key));
        Assert.Equal(1, (await _sink.NextAsync()).UpstreamAttempts);
    }

    [Fact]
    public async Task ConnectionRefusedOnTheFirstDestination_TheSecondStreams_AtOnce()
    {
        var sink = new RecordSink();
        // Relay's clock never moves: a failover that waited (a backoff) would hold the stream until the deadline.
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, TwoDestinations(upstream.Url), services: s => s
            .AddSingleton<IStreamUsageSink>(sink)
            .AddSingleton<TimeProvider>(new FakeTimeProvider(DateTimeOffset.UtcNow)));
        var key = NewKey();
        using var deadline = new CancellationTokenSource(Deadline.Default);
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: Fast(key)), HttpCompletionOption.ResponseHeadersRead, deadline.Token);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response, deadline.Token))[^1].IsDone);
        Assert.Equal(1, await UpstreamCountAsync(key));
        var record = await sink.NextAsync();
        Assert.Equal(["a-refused", "b-mock"], record.UpstreamDestinations);
    }

    [Fact]
    public async Task FailoverToAnAzureShapedDestination_SendsThatDestinationsOwnKeyInItsApiKeyHeader()
    {
        // The secondary captures what it receives; the primary refuses connections.
        var received = new TaskCompletionSource<(string? ApiKey, string? Authorization)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var azure = builder.Build();
        azure.MapPost("/openai/v1/chat/completions", (HttpContext c) =>
        {
            received.TrySetResult((c.Request.Headers["api-key"].ToString(), c.Request.Headers.Authorization.ToString()));
            return Results.Json(new { id = "x", @object = "chat.completion", choices = Array.Empty<object>() });
        });
        await azure.StartAsync();

        const string relayKey = "rk-test-failover";
        var settings = TwoDestinations(MockUpstreamFixture.Addresses(azure).First() + "/openai");
        settings["ReverseProxy:Clusters:llm:Destinations:b-mock:Metadata:Relay.ApiKeyHeader"] = "api-key";
        settings["ReverseProxy:Clusters:llm:Destinations:b-mock:Metadata:Relay.ApiKeyConfigKey"] = "Secrets:AzureOpenAIKey";
        settings["Secrets:AzureOpenAIKey"] = "azure-secret";
        settings["Relay:Auth:Mode"] = "RelayKeys";
        settings["Relay:Auth:UpstreamApiKey"] = "openai-secret";
        settings["Relay:RelayKeys:0:Name"] = "test";
        settings["Relay:RelayKeys:0:Sha256"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(relayKey)));
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, settings);

        using var request = SseRead.ChatRequest(relay.Url, stream: false);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", relayKey);
        using var response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (apiKey, authorization) = await received.Task.WaitAsync(Deadline.Default);
        Assert.Equal("azure-secret", apiKey);
        Assert.Equal("", authorization);
    }

    [Fact]
    public async Task Control_ConnectionRefusedWithMaxAttempts1_Is502()
    {
        var settings = TwoDestinations(upstream.Url);
        settings["Relay:Resilience:MaxAttempts"] = "1";
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, settings);
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: Fast(NewKey())));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", await ErrorCodeAsync(response));
    }

    [Fact]
    public async Task BreakerOpensAfterTwoFailures_TheNextRequestIsRefusedAtOnceWithoutAnUpstreamCall_ThenClosesAfterTheBreak()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Resilience:MaxAttempts"] = "1",
            ["Relay:Resilience:BreakerFailures"] = "2",
            ["Relay:Resilience:BreakSeconds"] = "30",
        }, services: s => s.AddSingleton<TimeProvider>(time));
        var key = NewKey();
        for (var i = 0; i < 2; i++)
        {
            using var failed = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 100, 503)));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        }

        Assert.Equal(2, await UpstreamCountAsync(key));
        // Refused at once: Relay's clock does not move, and the upstream is not called. How fast (the fastest of ten,
        // the first includes JIT compilation) is a latency figure: written to the output, not asserted.
        var fastest = TimeSpan.MaxValue;
        for (var i = 0; i < 10; i++)
        {
            var clock = Stopwatch.StartNew();
            using var refused = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: Fast(key)));
            fastest = clock.Elapsed < fastest ? clock.Elapsed : fastest;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("upstream_unavailable", await ErrorCodeAsync(refused));
            Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        }

        output.WriteLine($"refused in {fastest.TotalMilliseconds:F2} ms (the fastest of ten)");
        Assert.Equal(2, await UpstreamCountAsync(key));

        time.Advance(TimeSpan.FromSeconds(31));
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: Fast(key)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
        Assert.Equal(3, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task RetriesStopAtTheFirstTokenTimeout()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Timeouts:FirstTokenSeconds"] = "1.5",
            ["Relay:Resilience:MaxAttempts"] = "10",
            ["Relay:Resilience:RetryAmbiguousFailures"] = "true",
            ["Relay:Resilience:BreakerFailures"] = "0",
        });
        var key = NewKey();
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 100, 502)));

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("first_token_timeout", await ErrorCodeAsync(response));
        // The 504 cannot come before the 1.5 s timer fires (a lower bound by construction); how many attempts fit in
        // before it depends on the machine's pace: fewer than MaxAttempts (the timeout stopped the retries, not the count).
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.4), $"{clock.Elapsed}");
        Assert.InRange(await UpstreamCountAsync(key), 1, 9);
    }

    [Fact]
    public async Task RetryAfterThatDoesNotFitTheFirstTokenTimeout_PassesTheLastAnswerOn()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Timeouts:FirstTokenSeconds"] = "1.5",
            ["Relay:Resilience:MaxAttempts"] = "10",
        });
        var key = NewKey();
        var clock = Stopwatch.StartNew();
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: FailFirst(key, 100, 503)));

        // The first 503 (Retry-After: 1) fits into 1.5 s; the second does not: it goes to the client (a wait for it would
        // have ended in the first-token timeout's 504 instead). The first wait is a lower bound by construction.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.95), $"{clock.Elapsed}");
        Assert.Equal(2, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task ConfigExample_FailoverOpenAIAzure_StartsWithTwoDestinationsAndTheBreaker()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "config", "failover-openai-azure.json")))
        {
            directory = directory.Parent;
        }

        Assert.NotNull(directory);
        var settings = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(directory.FullName, "config", "failover-openai-azure.json"))
            .Build()
            .AsEnumerable()
            .Where(static kv => kv.Value is not null)
            .ToDictionary();
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, settings);

        var cluster = relay.App.Services.GetRequiredService<Yarp.ReverseProxy.IProxyStateLookup>().TryGetCluster("llm", out var c) ? c : null;
        Assert.NotNull(cluster);
        Assert.Equal(["1-openai", "2-azure"], cluster.Destinations.Keys.Order());
        Assert.Equal("Relay.CircuitBreaker", cluster.Model.Config.HealthCheck?.Passive?.Policy);
    }

    private static string NewKey() => Guid.NewGuid().ToString("N");

    internal static Dictionary<string, string> Fast(string key) => new()
    {
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-max-tokens"] = "5",
        ["x-mock-fail-key"] = key,
    };

    internal static Dictionary<string, string> FailFirst(string key, int times, int status)
    {
        var headers = Fast(key);
        headers["x-mock-status"] = status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        headers["x-mock-fail-times"] = times.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return headers;
    }

    /// <summary>One route, a cluster of two destinations tried in order: a closed port, then the simulated upstream.</summary>
    private static Dictionary<string, string?> TwoDestinations(string upstreamUrl) => new()
    {
        ["ReverseProxy:Routes:chat:ClusterId"] = "llm",
        ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
        ["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "FirstAlphabetical",
        ["ReverseProxy:Clusters:llm:Destinations:a-refused:Address"] = $"http://127.0.0.1:{FreePort.Next()}/",
        ["ReverseProxy:Clusters:llm:Destinations:b-mock:Address"] = upstreamUrl + "/",
    };

    private async Task<int> UpstreamCountAsync(string key)
        => JsonDocument.Parse(await upstream.Client.GetStringAsync($"{upstream.Url}/mock/fail-keys/{key}")).RootElement.GetProperty("requests").GetInt32();

    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString();

    private sealed class RecordSink : IStreamUsageSink
    {
        private readonly Channel<StreamUsageRecord> _records = Channel.CreateUnbounded<StreamUsageRecord>();

        public void OnStreamEnded(StreamUsageRecord record) => _records.Writer.TryWrite(record);

        public async Task<StreamUsageRecord> NextAsync()
        {
            using var timeout = new CancellationTokenSource(Deadline.Default);
            return await _records.Reader.ReadAsync(timeout.Token);
        }
    }
}

using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests;

/// <summary>
/// An upstream that comes back is served again within a probe interval (one second), not after the whole break:
/// with every destination of a cluster open, a breaker has no alternative to protect, so one request a second
/// probes. Where a healthy alternative exists, the open destination is still skipped for the break. Time is a
/// <see cref="FakeTimeProvider"/> (Relay's and YARP's clock), so nothing here depends on how fast the machine is.
/// The simulated upstream's <c>x-mock-fail-times</c>/<c>x-mock-fail-key</c> make "N failures, then back", and its
/// <c>/mock/fail-keys/{key}</c> count is the upstream's own record of the calls it got.
/// </summary>
public sealed class BreakerRecoveryTests(MockUpstreamFixture upstream) : IDisposable, IClassFixture<MockUpstreamFixture>
{
    private readonly HttpClient _client = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task SingleDestination_UpstreamBack_TheRequestAfterOneProbeIntervalIsServed_AndClosesTheBreaker()
    {
        await using var relay = await StartAsync(new());
        var key = await OpenTheBreakerAsync(relay, failures: 2);

        // Still within the probe interval: refused at once, without calling the upstream, told when to come back.
        using (var refused = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.Fast(key))))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("upstream_unavailable", await ErrorCodeAsync(refused));
            Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        }

        Assert.Equal(2, await UpstreamCountAsync(key));

        // One second later (not the 30 s break) the next request probes the upstream, which is back: served.
        _time.Advance(TimeSpan.FromSeconds(1));
        await AssertServedAsync(relay, key);
        Assert.Equal(3, await UpstreamCountAsync(key));

        // The probe's success closed the breaker: the requests after it go to the upstream at once.
        await relay.WaitForLogAsync(static r => r.Id.Name == "BreakerClosed");
        await AssertServedAsync(relay, key);
        Assert.Equal(4, await UpstreamCountAsync(key));
    }

    [Fact]
    public async Task SingleDestination_StillDown_OneProbeASecond_TheOthersAreRefusedWithoutAnUpstreamCall()
    {
        await using var relay = await StartAsync(new());
        var key = await OpenTheBreakerAsync(relay, failures: 100);

        for (var second = 1; second <= 3; second++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            // The probe reaches the upstream, which is still failing: its own 503 goes to the client.
            using (var probe = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.FailFirst(key, 100, 503))))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, probe.StatusCode);
                Assert.Equal("service_unavailable", await ErrorCodeAsync(probe));
            }

            // Every other request of that second is answered by the breaker.
            for (var i = 0; i < 3; i++)
            {
                using var refused = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.FailFirst(key, 100, 503)));
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.Equal("upstream_unavailable", await ErrorCodeAsync(refused));
            }

            Assert.Equal(2 + second, await UpstreamCountAsync(key));
        }

        // A failed probe does not count as the breaker opening again.
        Assert.Single(relay.Logs.GetSnapshot(), static r => r.Id.Name == "BreakerOpened");
    }

    [Fact]
    public async Task Control_TwoDestinations_OneRefused_RequestsAvoidItWhileItsBreakerIsOpen_ProbeIntervalsOrNot()
    {
        var sink = new CapturingUsageSink();
        await using var relay = await StartAsync(new()
        {
            ["Relay:Resilience:MaxAttempts"] = "2",
            ["ReverseProxy:Routes:chat:ClusterId"] = "llm",
            ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
            // The refused destination first, every time its breaker lets it be picked.
            ["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "FirstAlphabetical",
            ["ReverseProxy:Clusters:llm:Destinations:a-refused:Address"] = $"http://127.0.0.1:{FreePort.Next()}/",
            ["ReverseProxy:Clusters:llm:Destinations:b-mock:Address"] = upstream.Url + "/",
        }, sink);

        // Two requests fail over from the refused destination; the second failure opens its breaker.
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(["a-refused", "b-mock"], await ServedThroughAsync(relay, sink));
        }

        // From then on, also past several probe intervals, only the healthy destination is called.
        for (var i = 0; i < 4; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1.5));
            Assert.Equal(["b-mock"], await ServedThroughAsync(relay, sink));
        }
    }

    private Task<InProcessRelay> StartAsync(Dictionary<string, string?> settings, CapturingUsageSink? sink = null)
    {
        settings.TryAdd("Relay:Resilience:MaxAttempts", "1");
        settings["Relay:Resilience:BreakerFailures"] = "2";
        settings["Relay:Resilience:BreakSeconds"] = "30";
        return InProcessRelay.StartAsync(upstream.Url, settings, services: s =>
        {
            s.AddSingleton<TimeProvider>(_time);
            if (sink is not null)
            {
                s.AddSingleton<IStreamUsageSink>(sink);
            }
        });
    }

    /// <summary>Two failed requests (the upstream's 503) open the breaker; the upstream fails <paramref name="failures"/> times in all.</summary>
    private async Task<string> OpenTheBreakerAsync(InProcessRelay relay, int failures)
    {
        var key = Guid.NewGuid().ToString("N");
        for (var i = 0; i < 2; i++)
        {
            using var failed = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.FailFirst(key, failures, 503)));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        }

        await relay.WaitForLogAsync(static r => r.Id.Name == "BreakerOpened");
        return key;
    }

    private async Task AssertServedAsync(InProcessRelay relay, string key)
    {
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.Fast(key)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
    }

    private async Task<IReadOnlyList<string>> ServedThroughAsync(InProcessRelay relay, CapturingUsageSink sink)
    {
        var record = sink.Next();
        using var response = await _client.SendAsync(SseRead.ChatRequest(relay.Url, headers: ResilienceTests.Fast(Guid.NewGuid().ToString("N"))), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
        return (await record.WaitAsync(Deadline.Default)).UpstreamDestinations;
    }

    private async Task<int> UpstreamCountAsync(string key)
        => JsonDocument.Parse(await upstream.Client.GetStringAsync($"{upstream.Url}/mock/fail-keys/{key}")).RootElement.GetProperty("requests").GetInt32();

    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString();
}

using System.Net;
using System.Net.Http;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>Graceful shutdown drains the streams in flight, then ends the rest with relay_shutdown; no silent cut.</summary>
public sealed class ShutdownTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private static Dictionary<string, string?> Drain1s() => new() { ["Relay:Shutdown:DrainSeconds"] = "1" };

    [Fact]
    public async Task LongStreamAtShutdown_EndsWithRelayShutdownEvent_AndNewRequestsGet503()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, Drain1s());
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "10", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "200",
        });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task? stop = null;
        var content = 0;
        var reading = SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            if (e.Content.Length > 0 && ++content == 3)
            {
                stop = relay.App.StopAsync();
                stopping.TrySetResult();
            }

            return false;
        });

        await stopping.Task.WaitAsync(Deadline.Default);

        // During the drain a new request is refused with 503 (or, once the listener closed, the connection is).
        using var late = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "3" });
        using var fresh = new HttpClient();
        try
        {
            using var lateResponse = await fresh.SendAsync(late);
            await ErrorTests.AssertErrorAsync(lateResponse, 503, "relay_shutdown", "relay_shutdown");
            Assert.Equal(TimeSpan.FromSeconds(1), lateResponse.Headers.RetryAfter?.Delta);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConnectionError)
        {
        }

        var events = await reading.WaitAsync(Deadline.Default);
        var last = events[^1];
        Assert.True(last.IsError, $"last event: {last.Data}\n{string.Join("\n", relay.Logs.GetSnapshot().Select(l => $"{l.Level} {l.Category} {l.Message}"))}");
        Assert.Equal("relay_shutdown", last.Json.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.IsDone);
        await stop!.WaitAsync(Deadline.Default);
        await upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
    }

    [Fact]
    public async Task ShortStreamAtShutdown_FinishesWithinTheDrain()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Shutdown:DrainSeconds"] = "5" });
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "20", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "20",
        });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Task? stop = null;
        var events = await SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            if (stop is null && e.Content.Length > 0)
            {
                stop = relay.App.StopAsync();
            }

            return false;
        });

        Assert.NotNull(stop);
        Assert.True(events[^1].IsDone, $"last event: {events[^1].Data}");
        Assert.DoesNotContain(events, e => e.IsError);
        await stop!.WaitAsync(Deadline.Default);
    }
}

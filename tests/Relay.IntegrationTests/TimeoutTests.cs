using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Every timeout ends the request with the exact error the client sees, and cancels the upstream. The upstream holds
/// (its first token, or mid-stream) until it is aborted, so a timeout is the only way the request can end, however slow
/// the machine; the maximum duration runs on a fake clock, moved once the stream has started.
/// </summary>
public sealed class TimeoutTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    // Longer than any test: the simulated upstream holds until Relay aborts it.
    private const string Forever = "600000";

    [Fact]
    public async Task FirstTokenTimeoutFromTheHeader_Gets504TimeoutJson_BeforeTheFirstByte()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-ttft-ms"] = Forever, ["Relay-Timeout"] = "first-token=1",
        });
        await ErrorTests.AssertErrorAsync(await Client.SendAsync(request), 504, "timeout", "first_token_timeout");
    }

    [Fact]
    public async Task FirstTokenTimeoutFromConfiguration_Gets504TimeoutJson()
    {
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, new Dictionary<string, string?> { ["Relay:Timeouts:FirstTokenSeconds"] = "1" });
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = Forever });
        await ErrorTests.AssertErrorAsync(await Client.SendAsync(request), 504, "timeout", "first_token_timeout");
    }

    [Fact]
    public async Task IdleTimeoutMidStream_EndsWithIdleTimeoutErrorEvent_AndAbortsTheUpstream()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "50",
            ["x-mock-stall-after-tokens"] = "3", ["x-mock-stall-ms"] = Forever, ["Relay-Timeout"] = "idle=1",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        using var deadline = new CancellationTokenSource(Deadline.Default);
        var events = await SseRead.ReadAllAsync(response, deadline.Token);

        Assert.Contains(events, e => e.Content.Length > 0);
        AssertFinalTimeout(events, "idle_timeout");
        var record = await Upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.Equal(3, record.GetProperty("tokens_at_abort").GetInt32());
    }

    [Fact]
    public async Task MaxDurationFromTheHeader_EndsWithMaxDurationErrorEvent()
    {
        // Relay's clock moves only when the test moves it: past the 1 s limit once the first content has arrived, while
        // the upstream holds after 3 tokens. The limit can then only end the stream after it started (an error event,
        // not a 504), and nothing but the limit can end it.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, services: s => s.AddSingleton<TimeProvider>(time));
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "100",
            ["x-mock-stall-after-tokens"] = "3", ["x-mock-stall-ms"] = Forever, ["Relay-Timeout"] = "1",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var moved = false;
        using var deadline = new CancellationTokenSource(Deadline.Default);
        var events = await SseRead.ReadAllAsync(response, deadline.Token, e =>
        {
            if (!moved && e.Content.Length > 0)
            {
                moved = true;
                time.Advance(TimeSpan.FromSeconds(2));
            }

            return false;
        });

        Assert.True(moved, string.Join(" | ", events.Select(static e => e.Data)));
        AssertFinalTimeout(events, "max_duration_timeout");
        var record = await Upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.Equal(3, record.GetProperty("tokens_at_abort").GetInt32());
    }

    [Theory]
    [InlineData("soon")]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("total=")]
    [InlineData("lunch=5")]
    public async Task InvalidRelayTimeoutHeader_Gets400Json(string value)
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string> { ["Relay-Timeout"] = value });
        await ErrorTests.AssertErrorAsync(await Client.SendAsync(request), 400, "invalid_request_error", "invalid_timeout");
    }

    private static void AssertFinalTimeout(List<ReceivedEvent> events, string code)
    {
        var last = events[^1];
        Assert.True(last.IsError, $"last event: {last.Data}");
        var error = last.Json.GetProperty("error");
        Assert.Equal("timeout", error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.DoesNotContain(events, e => e.IsDone);
    }
}

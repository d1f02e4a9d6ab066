using System.Net;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>Every timeout ends the request with the exact error the client sees, and cancels the upstream.</summary>
public sealed class TimeoutTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{

    [Fact]
    public async Task FirstTokenTimeoutFromTheHeader_Gets504TimeoutJson_BeforeTheFirstByte()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-ttft-ms"] = "5000", ["Relay-Timeout"] = "first-token=1",
        });
        await ErrorTests.AssertErrorAsync(await Client.SendAsync(request), 504, "timeout", "first_token_timeout");
    }

    [Fact]
    public async Task FirstTokenTimeoutFromConfiguration_Gets504TimeoutJson()
    {
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, new Dictionary<string, string?> { ["Relay:Timeouts:FirstTokenSeconds"] = "1" });
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "5000" });
        await ErrorTests.AssertErrorAsync(await Client.SendAsync(request), 504, "timeout", "first_token_timeout");
    }

    [Fact]
    public async Task IdleTimeoutMidStream_EndsWithIdleTimeoutErrorEvent_AndAbortsTheUpstream()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "50",
            ["x-mock-stall-after-tokens"] = "3", ["x-mock-stall-ms"] = "5000", ["Relay-Timeout"] = "idle=1",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var events = await SseRead.ReadAllAsync(response);

        Assert.Contains(events, e => e.Content.Length > 0);
        AssertFinalTimeout(events, "idle_timeout");
        var record = await Upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.Equal(3, record.GetProperty("tokens_at_abort").GetInt32());
    }

    [Fact]
    public async Task MaxDurationFromTheHeader_EndsWithMaxDurationErrorEvent()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "10", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "100", ["Relay-Timeout"] = "1",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var events = await SseRead.ReadAllAsync(response);

        // The stream had started (the error is an event after the first chunk, not a 504); whether a content token
        // also made it within the 1 s depends on the machine's pace (a loaded CI machine delivered only the role chunk).
        Assert.True(events.Count >= 2, string.Join(" | ", events.Select(static e => e.Data)));
        AssertFinalTimeout(events, "max_duration_timeout");
        var record = await Upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.True(record.GetProperty("tokens_at_abort").GetInt32() < 100);
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

using System.Net;
using System.Text.Json;

namespace MockInference.Tests;

public sealed class FaultInjectionTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    [Fact]
    public async Task FailAfterTokens_ErrorEvent_EndsWithOpenAiErrorAndNoDone()
    {
        var knobs = new Dictionary<string, string> { ["x-mock-fail-after-tokens"] = "5", ["x-mock-fail-mode"] = "error-event" };
        var (response, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: knobs));

        Assert.DoesNotContain(events, e => e.IsDone);
        var error = events[^1].Json.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Equal("mock_failure", error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));

        var record = await MockApi.GetRecordAsync(server.Client, response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal(5, record.GetProperty("tokens_generated").GetInt32());
        Assert.Equal("failed", record.GetProperty("status").GetString());
    }

    [Fact]
    public async Task FailAfterTokens_Reset_AbortsTheConnectionMidEvent()
    {
        var knobs = new Dictionary<string, string> { ["x-mock-fail-after-tokens"] = "3", ["x-mock-fail-mode"] = "reset" };
        using var response = await server.Client.SendAsync(MockApi.Chat(knobs: knobs), HttpCompletionOption.ResponseHeadersRead);
        var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();

        var exception = await Record.ExceptionAsync(() => stream.CopyToAsync(received));

        Assert.IsAssignableFrom<IOException>(exception);
        var text = System.Text.Encoding.UTF8.GetString(received.ToArray());
        Assert.DoesNotContain("[DONE]", text);
        Assert.False(text.EndsWith("\n\n", StringComparison.Ordinal), "the last event is cut in half");
    }

    [Fact]
    public async Task Stall_PausesBetweenTwoConsecutiveTokens()
    {
        var knobs = new Dictionary<string, string>
        {
            ["x-mock-stall-after-tokens"] = "5",
            ["x-mock-stall-ms"] = "600",
            ["x-mock-max-tokens"] = "10",
            ["x-mock-tokens-per-second"] = "100",
            ["x-mock-token-boundary"] = "raw-bytes",
        };
        var (response, _) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: knobs));

        var record = await MockApi.GetRecordAsync(server.Client, response.Headers.GetValues("x-mock-request-id").Single());
        var times = record.GetProperty("token_emit_us").EnumerateArray().Select(t => t.GetInt64()).ToArray();
        Assert.Equal(10, times.Length);
        // Lower bounds only, which the schedule guarantees however loaded the machine (a timer never fires early, but
        // for its ~4 ms tick): token i waits for arrival + i / rate (MockApi.Chat asks for no TTFT), and tokens 5.. also for the 600 ms stall.
        // Where the stall goes, exactly, is TokenScheduleTests' (a fake clock).
        var arrived = record.GetProperty("arrived_us").GetInt64();
        for (var i = 0; i < times.Length; i++)
        {
            var due = arrived + (i * 10_000) + (i >= 5 ? 600_000 : 0);
            Assert.True(times[i] >= due - 10_000, $"token {i} emitted {(due - times[i]) / 1000} ms before it was due: {string.Join(",", times.Select(t => t - arrived))}");
        }

        Assert.True(times[5] - times[4] >= 590_000, $"no 600 ms pause between tokens 5 and 6: {string.Join(",", times.Select(t => t - arrived))}");
    }

    [Theory]
    [InlineData(429, "rate_limit_exceeded")]
    [InlineData(503, "service_unavailable")]
    public async Task Status_IsSentAtOnce_WithRetryAfterAndJsonError(int status, string code)
    {
        var knobs = new Dictionary<string, string> { ["x-mock-status"] = status.ToString(System.Globalization.CultureInfo.InvariantCulture), ["x-mock-ttft-ms"] = "10000" };
        var started = MonotonicClock.NowMicroseconds();
        using var response = await server.Client.SendAsync(MockApi.Chat(knobs: knobs), HttpCompletionOption.ResponseHeadersRead);

        Assert.True(MonotonicClock.NowMicroseconds() - started < 5_000_000, "errors do not wait for the time to first token");
        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.True(response.Headers.Contains("x-mock-request-id"));
    }

    [Fact]
    public async Task BadKnobValue_Is400_NamingTheHeader()
    {
        using var response = await server.Client.SendAsync(MockApi.Chat(knobs: new() { ["x-mock-token-boundary"] = "bogus" }));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("x-mock-token-boundary", error.GetProperty("param").GetString());
    }
}

using System.Net;
using System.Text.Json;

namespace MockInference.Tests;

public sealed class RecordingTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    [Fact]
    public async Task ClientCancel_IsRecorded_AndGenerationStops()
    {
        var knobs = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "20", ["x-mock-max-tokens"] = "200" };
        // A client that closes the connection at once when a response is dropped, as a browser does when
        // the user stops generation (by default HttpClient first drains the rest for up to 2 s).
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.Client.BaseAddress };
        var response = await client.SendAsync(MockApi.Chat(knobs: knobs), HttpCompletionOption.ResponseHeadersRead);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[16 * 1024];
        var received = 0;
        while (CountEvents(buffer.AsSpan(0, received)) < 4)
        {
            received += await stream.ReadAsync(buffer.AsMemory(received));
        }

        var cancelledAt = MonotonicClock.NowMicroseconds();
        response.Dispose();

        // Waits for the condition (the record says the request was aborted and its handler ended), not for a time;
        // the deadline is only there so a real failure ends the test.
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        var record = await MockApi.GetRecordAsync(server.Client, id);
        while (record.GetProperty("aborted_us").ValueKind != JsonValueKind.Number || record.GetProperty("status").GetString() == "in_progress")
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), $"the abort was not recorded: {record}");
            await Task.Delay(10);
            record = await MockApi.GetRecordAsync(server.Client, id);
        }

        // The abort came after the client went away (an order of the clock's readings, not a bound on latency).
        Assert.True(record.GetProperty("aborted_us").GetInt64() >= cancelledAt, record.ToString());
        Assert.Equal("aborted", record.GetProperty("status").GetString());
        var atAbort = record.GetProperty("tokens_at_abort").GetInt32();
        Assert.InRange(atAbort, 3, 199);

        // The record is final (the handler has ended), so generation has stopped: at most the token in flight when the
        // abort arrived was generated after it, and nothing was completed.
        var generated = record.GetProperty("tokens_generated").GetInt32();
        Assert.InRange(generated, atAbort, atAbort + 1);
        Assert.Equal(JsonValueKind.Null, record.GetProperty("completed_us").ValueKind);
    }

    [Fact]
    public async Task CompletedRequest_RecordHasTimelineAndBody()
    {
        var (response, _) = await MockApi.StreamAsync(server.Client, MockApi.Chat(maxTokens: 8, user: "record me"));
        var record = await MockApi.GetRecordAsync(server.Client, response.Headers.GetValues("x-mock-request-id").Single());

        Assert.Equal("/v1/chat/completions", record.GetProperty("path").GetString());
        Assert.Equal("completed", record.GetProperty("status").GetString());
        Assert.Equal(200, record.GetProperty("http_status").GetInt32());
        Assert.Contains("record me", record.GetProperty("request_body").GetString());
        var arrived = record.GetProperty("arrived_us").GetInt64();
        var firstByte = record.GetProperty("first_byte_us").GetInt64();
        var completed = record.GetProperty("completed_us").GetInt64();
        Assert.True(arrived <= firstByte && firstByte <= completed);
        Assert.Equal(8, record.GetProperty("token_emit_us").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, record.GetProperty("aborted_us").ValueKind);
    }

    [Fact]
    public async Task UnknownRecord_Is404()
    {
        using var response = await server.Client.GetAsync("/mock/requests/nope");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.True(response.Headers.Contains("x-mock-request-id"));
    }

    [Fact]
    public async Task Clock_ReturnsMonotonicMicroseconds()
    {
        var before = MonotonicClock.NowMicroseconds();
        using var response = await server.Client.GetAsync("/mock/clock");
        var after = MonotonicClock.NowMicroseconds();

        Assert.True(response.Headers.Contains("x-mock-request-id"));
        var now = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("now_us").GetInt64();
        Assert.InRange(now, before, after);
    }

    private static int CountEvents(ReadOnlySpan<byte> bytes)
    {
        var count = 0;
        int index;
        while ((index = bytes.IndexOf("\n\n"u8)) >= 0)
        {
            count++;
            bytes = bytes[(index + 2)..];
        }

        return count;
    }
}

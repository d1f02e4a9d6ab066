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

        JsonElement record = default;
        for (var i = 0; i < 100; i++)
        {
            record = await MockApi.GetRecordAsync(server.Client, id);
            if (record.GetProperty("aborted_us").ValueKind == JsonValueKind.Number && record.GetProperty("status").GetString() != "in_progress")
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.True(record.GetProperty("aborted_us").ValueKind == JsonValueKind.Number, record.ToString());
        var abortedUs = record.GetProperty("aborted_us").GetInt64();
        Assert.InRange(abortedUs, cancelledAt, cancelledAt + 1_500_000);
        Assert.Equal("aborted", record.GetProperty("status").GetString());
        var atAbort = record.GetProperty("tokens_at_abort").GetInt32();
        Assert.InRange(atAbort, 3, 50);

        await Task.Delay(300);
        var later = await MockApi.GetRecordAsync(server.Client, id);
        var generated = later.GetProperty("tokens_generated").GetInt32();
        Assert.Equal(generated, record.GetProperty("tokens_generated").GetInt32());
        Assert.InRange(generated, atAbort, atAbort + 1);
        Assert.Equal(JsonValueKind.Null, later.GetProperty("completed_us").ValueKind);
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

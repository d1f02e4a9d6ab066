using System.Buffers;
using System.Text;
using System.Text.Json;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Errors;
using Relay.Middleware.Tests.Support;
using Relay.Middleware.WebSockets;

namespace Relay.Middleware.Tests.WebSockets;

/// <summary>
/// The WebSocket frame sink (issue 12, part 3): the event pipeline writes the bridge's messages itself, so the bridge
/// never parses Relay's own SSE output again, and a WebSocket client gets exactly the events an SSE client gets.
/// </summary>
public sealed class WebSocketFrameSinkTests
{
    private const string ResponseId = "resp_test_1";

    [Fact]
    public void ChatStream_IsOneMessagePerEvent_EachChunkByteForByte_DoneIsNoMessage()
    {
        var upstream = new[] { ChatChunks.Role(), ChatChunks.Content("Hel"), ChatChunks.Content("lo"), ChatChunks.Finish(), "data: [DONE]\n\n" };
        var (messages, sink) = Run(new StreamPipelineSettings { CoalescingEnabled = false }, string.Concat(upstream));

        Assert.Equal(4, messages.Count);
        for (var i = 0; i < 4; i++)
        {
            var chunk = upstream[i]["data: ".Length..^2];
            Assert.Equal($"{{\"type\":\"response.chunk\",\"response_id\":\"{ResponseId}\",\"chunk\":{chunk}}}", messages[i]);
        }

        Assert.Equal("Hello", Encoding.UTF8.GetString(sink.Text.WrittenSpan));
        Assert.Null(sink.Error);
    }

    [Fact]
    public void UpstreamErrorEvent_IsAnErrorMessage_AndTheResponsesError()
    {
        var error = "{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":\"mock_failure\"}";
        var (messages, sink) = Run(new StreamPipelineSettings(), ChatChunks.Content("ok") + $"data: {{\"error\":{error}}}\n\n");

        Assert.Equal($"{{\"type\":\"error\",\"response_id\":\"{ResponseId}\",\"error\":{error}}}", messages[^1]);
        Assert.Equal(error, Encoding.UTF8.GetString(sink.Error!));
    }

    [Fact]
    public void RelaysOwnFailure_IsAnErrorMessage_WithTheTablesRow()
    {
        using var sink = new WebSocketFrameSink(ResponseId);
        using var driver = new PipelineDriver(new StreamPipelineSettings(), sink);
        driver.Process(ChatChunks.Content("ok"));
        var row = RelayErrorTable.ForFailedEnd(StreamEndReason.IdleTimeout);
        driver.Fail(row.Message, row.Type, row.Code);

        using var last = JsonDocument.Parse(Messages(driver.Output)[^1]);
        Assert.Equal("error", last.RootElement.GetProperty("type").GetString());
        Assert.Equal(row.Code, last.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(row.Message, last.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.NotNull(sink.Error);
    }

    [Fact]
    public void TypedAndNonJsonEvents_AreResponseEvents_CommentsIdsAndRetriesAreNoMessage()
    {
        var (messages, _) = Run(new StreamPipelineSettings(),
            ": keep-alive\n\nretry: 1000\n\nid: 7\n\nevent: ping\ndata: {}\n\ndata: not json\n\n");

        Assert.Equal(
        [
            $"{{\"type\":\"response.event\",\"response_id\":\"{ResponseId}\",\"event\":\"ping\",\"data\":\"{{}}\"}}",
            $"{{\"type\":\"response.event\",\"response_id\":\"{ResponseId}\",\"event\":null,\"data\":\"not json\"}}",
        ], messages);
    }

    /// <summary>Whatever the cadence merges, held characters included: the frames carry what SSE carries.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void CoalescedStream_FramesCarryTheSseEvents_AndTheTextIsWhatWasDelivered(int seed)
    {
        var upstream = new StringBuilder(ChatChunks.Role());
        var text = "Grüße 👍🏽 and 🇫🇷, café.";
        var bytes = Encoding.UTF8.GetBytes(text);
        var random = new Random(seed);
        var parts = new List<byte[]>();
        for (var at = 0; at < bytes.Length;)
        {
            var size = Math.Min(random.Next(1, 4), bytes.Length - at);
            parts.Add(bytes[at..(at + size)]);
            at += size;
        }

        var input = new List<byte>(Encoding.UTF8.GetBytes(upstream.ToString()));
        foreach (var part in parts)
        {
            input.AddRange(ChatChunks.RawContent(part));
        }

        input.AddRange(Encoding.UTF8.GetBytes(ChatChunks.Finish() + "data: [DONE]\n\n"));

        using var sse = new PipelineDriver(new StreamPipelineSettings());
        using var sink = new WebSocketFrameSink(ResponseId);
        using var frames = new PipelineDriver(new StreamPipelineSettings(), sink);
        sse.Replay([.. input], new Random(seed), 64, TimeSpan.FromMilliseconds(15));
        frames.Replay([.. input], new Random(seed), 64, TimeSpan.FromMilliseconds(15));

        var events = sse.ClientEvents();
        var chunks = Messages(frames.Output).Select(static m => JsonDocument.Parse(m).RootElement.GetProperty("chunk").GetRawText()).ToList();
        Assert.Equal(events.Take(events.Count - 1).Select(static e => Encoding.UTF8.GetString(e)), chunks);
        Assert.Equal(text, Encoding.UTF8.GetString(sink.Text.WrittenSpan));
        Assert.Equal(ClientContent.Join(events), text);
    }

    private static (List<string> Messages, WebSocketFrameSink Sink) Run(StreamPipelineSettings settings, string upstream)
    {
        var sink = new WebSocketFrameSink(ResponseId);
        using var driver = new PipelineDriver(settings, sink);
        driver.Process(upstream);
        driver.Complete();
        return (Messages(driver.Output), sink);
    }

    private static List<string> Messages(ReadOnlySpan<byte> output)
    {
        var buffer = new ReadOnlySequence<byte>(output.ToArray());
        var messages = new List<string>();
        while (WebSocketFrameSink.TryReadMessage(ref buffer, out var message))
        {
            messages.Add(Encoding.UTF8.GetString(message.ToArray()));
        }

        Assert.True(buffer.IsEmpty, "a partial message was left");
        return messages;
    }
}

using System.Text;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.ServerSentEvents;
using Relay.Middleware.Streaming;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Streaming;

/// <summary>
/// Issue 22, defect 2: a chat stream whose upstream body ends cleanly with an event that has no terminating blank
/// line. WHATWG: "If the file ends in the middle of an event, before the final empty line, the incomplete event is
/// not dispatched." Relay does not complete it either: the <c>upstream_truncated</c> error follows the last whole
/// event. (A last <c>data: [DONE]</c> line still ends a complete stream: StreamEndingTests.)
/// </summary>
public sealed class UnterminatedFinalEventTests
{
    private const string IssueBody = "retry:1000\ndata:test1\n\nid:test\ndata:test2\n";

    private static readonly StreamPipelineSettings s_chat = new();

    [Fact]
    public void Parser_EndOfInputInsideAnEvent_DispatchesOnlyTheTerminatedEvent()
    {
        using var parser = new IncrementalSseParser();
        parser.Append(Encoding.UTF8.GetBytes(IssueBody));
        var events = new List<string>();
        while (parser.TryRead(out var kind))
        {
            if (kind == SseItemKind.Event)
            {
                events.Add(Encoding.UTF8.GetString(parser.Data));
            }
        }

        Assert.Equal(["test1"], events);
        Assert.True(parser.AtLineBoundary);
        Assert.True(parser.InsideBlock);
    }

    [Theory]
    [InlineData(IssueBody)]
    [InlineData("retry:1000\r\ndata:test1\r\n\r\nid:test\r\ndata:test2\r\n")]
    [InlineData("retry:1000\rdata:test1\r\rid:test\rdata:test2\r")]
    public void Pipeline_CleanEndInsideAnEvent_NotCompleteAndTheEventNotDispatched(string body)
    {
        using var driver = new PipelineDriver(s_chat);
        driver.Process(body);
        var output = new System.Buffers.ArrayBufferWriter<byte>();

        Assert.False(driver.Pipeline.TryDispatchFinalEvent(output));
        Assert.Equal(0, output.WrittenCount);
        Assert.Equal(["test1"], driver.ClientEvents().Select(static e => Encoding.UTF8.GetString(e)));
    }

    [Fact]
    public void Pipeline_CompleteInsideAnEvent_DoesNotDispatchIt()
    {
        using var driver = new PipelineDriver(s_chat);
        driver.Process(ChatChunks.Content("hi") + ChatChunks.Content(" there").TrimEnd('\n'));
        driver.Complete();
        Assert.Equal("hi", ClientContent.Join(driver.ClientEvents()));
        Assert.Single(driver.ClientEvents());
    }

    [Theory]
    [InlineData("data: [DONE]\n")]
    [InlineData("data: [DONE]\r")]
    [InlineData("data:[DONE]\r\n")]
    public void Pipeline_LastDoneLineWithoutBlankLine_IsTheCompleteStreamsEnd(string tail)
    {
        using var driver = new PipelineDriver(s_chat);
        driver.Process(ChatChunks.Content("hi") + tail);
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Assert.True(driver.Pipeline.TryDispatchFinalEvent(output));
        Assert.Equal("data: [DONE]\n\n", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public async Task Relay_ChatRoute_IssueBody_ErrorEventFollowsTest1()
    {
        var (reason, client) = await StreamEndingTests.RelayAsync(s_chat, IssueBody);

        Assert.Equal(StreamEndReason.UpstreamError, reason);
        Assert.DoesNotContain("test2", client, StringComparison.Ordinal);
        var items = await StreamEndingTests.WhatwgEventsAsync(client);
        Assert.Equal(2, items.Count);
        Assert.Equal("test1", items[0].Data);
        Assert.Contains("upstream_truncated", items[1].Data, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Relay_ChatRoute_UnterminatedChunkAfterText_TextThenError()
    {
        // The last chunk's lines are complete, its blank line never came: its text is not delivered.
        var upstream = ChatChunks.Content("one") + ChatChunks.Content(" two").TrimEnd('\n') + "\n";
        var (reason, client) = await StreamEndingTests.RelayAsync(s_chat, upstream);

        Assert.Equal(StreamEndReason.UpstreamError, reason);
        var events = PipelineDriver.ParseEvents(Encoding.UTF8.GetBytes(client));
        Assert.Equal("one", ClientContent.Join(events));
        Assert.Equal(2, events.Count);
        Assert.Contains("upstream_truncated", Encoding.UTF8.GetString(events[^1]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Relay_PassThroughRoute_IssueBody_CopiedExactly_WhatwgClientDropsTest2()
    {
        // Pass-through routes keep copying the body as sent: their client applies WHATWG itself.
        var (reason, client) = await StreamEndingTests.RelayAsync(new StreamPipelineSettings { Kind = StreamKind.PassThrough }, IssueBody);
        Assert.Equal(StreamEndReason.Completed, reason);
        Assert.Equal(IssueBody, client);
        Assert.Equal(["test1"], (await StreamEndingTests.WhatwgEventsAsync(client)).Select(static i => i.Data));
    }
}

using System.IO.Pipelines;
using System.Net.Http;
using System.Net.ServerSentEvents;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Streaming;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Streaming;

/// <summary>
/// How the relay loop ends a stream whose upstream body ended cleanly: the whole upstream
/// body is fed to <see cref="SseStreamRelay"/> and what the client received is read back, also with the framework's
/// WHATWG parser (<see cref="SseParser"/>) for what an <c>EventSource</c> dispatches.
/// </summary>
public sealed class StreamEndingTests
{
    private static readonly StreamPipelineSettings s_chat = new();
    private static readonly StreamPipelineSettings s_passThrough = new() { Kind = StreamKind.PassThrough };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UpstreamErrorEvent_AfterIncompleteCharacter_IsTheLastEvent_CharacterDropped(bool surrogateEscape)
    {
        // Seed 1014's shape: text, then half of a 4-byte character (raw bytes, or a lone high surrogate escape),
        // then the upstream's own error event and a clean end without [DONE].
        var half = surrogateEscape ? "\\ud83d"u8.ToArray() : [0xF0, 0x9F, 0x98];
        var upstream = Concat(ChatChunks.Content("ok"), ChatChunks.RawContent(half),
            "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":\"mock_failure\"}}\n\n");
        var (reason, client) = await RelayAsync(s_chat, upstream);

        var events = PipelineDriver.ParseEvents(Encoding.UTF8.GetBytes(client));
        Assert.StartsWith("{\"error\":", Encoding.UTF8.GetString(events[^1]), StringComparison.Ordinal);
        Assert.Equal("ok", ClientContent.Join(events));
        Assert.DoesNotContain("\\ufffd", client, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("\uFFFD", client, StringComparison.Ordinal);
        Assert.Equal(StreamEndReason.UpstreamError, reason);
    }

    [Fact]
    public async Task DoneLineWithoutFinalBlankLine_ThenCleanEnd_IsComplete()
    {
        var upstream = ChatChunks.Content("hi") + "data: [DONE]\n";
        var (reason, client) = await RelayAsync(s_chat, upstream);
        Assert.Equal(StreamEndReason.Completed, reason);
        Assert.Equal(ChatChunks.Content("hi") + "data: [DONE]\n\n", client);
    }

    [Theory]
    [InlineData("data: [DONE]")]
    [InlineData("data: {\"id\":\"x\",\"cho")]
    public async Task CleanEndInsideALine_IsTruncated(string tail)
    {
        // A line cut in the middle is not known to be whole: the partial event is dropped, an error ends the stream.
        var (reason, client) = await RelayAsync(s_chat, ChatChunks.Content("hi") + tail);
        Assert.Equal(StreamEndReason.UpstreamError, reason);
        var events = PipelineDriver.ParseEvents(Encoding.UTF8.GetBytes(client));
        Assert.Equal(2, events.Count);
        Assert.Contains("upstream_truncated", Encoding.UTF8.GetString(events[^1]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ChatStreamWithoutDone_UnterminatedLastEvent_IsDiscardedThenTruncated()
    {
        // WHATWG: "the incomplete event is not dispatched" (issue 22, defect 2; UnterminatedFinalEventTests).
        var (reason, client) = await RelayAsync(s_chat, ChatChunks.Content("hi") + ChatChunks.Content(" there").TrimEnd('\n') + "\n");
        Assert.Equal(StreamEndReason.UpstreamError, reason);
        var events = PipelineDriver.ParseEvents(Encoding.UTF8.GetBytes(client));
        Assert.Equal("hi", ClientContent.Join(events));
        Assert.Contains("upstream_truncated", Encoding.UTF8.GetString(events[^1]), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("retry:1000\ndata:test1\n\nid:test\ndata:test2\n")]
    [InlineData("event: a\ndata: 1\n\ndata: par")]
    [InlineData("data: x\r\n\r\n: comment\r\nid: 3\r")]
    public async Task PassThroughStream_CleanEnd_IsCopiedExactly_EndIncluded(string upstream)
    {
        var (reason, client) = await RelayAsync(s_passThrough, upstream);
        Assert.Equal(StreamEndReason.Completed, reason);
        Assert.Equal(upstream, client);
    }

    [Fact]
    public async Task PassThroughStream_WhatwgClientDispatchesOnlyTheTerminatedEvent()
    {
        var (_, client) = await RelayAsync(s_passThrough, "retry:1000\ndata:test1\n\nid:test\ndata:test2\n");
        var items = await WhatwgEventsAsync(client);
        Assert.Equal(["test1"], items.Select(static i => i.Data));
    }

    [Fact]
    public async Task IdOnlyBlock_OnChatRoute_IsKept_SoEventsCarryTheLastEventId()
    {
        var (reason, client) = await RelayAsync(s_chat, "id: 7\n\ndata: after\n\ndata: [DONE]\n\n");
        Assert.Equal(StreamEndReason.Completed, reason);
        Assert.Equal("id: 7\n\ndata: after\n\ndata: [DONE]\n\n", client);
        var items = await WhatwgEventsAsync(client);
        Assert.Equal(["after", "[DONE]"], items.Select(static i => i.Data));
        Assert.All(items, static i => Assert.Equal("7", i.LastEventId));
    }

    [Fact]
    public async Task IdAndRetryFields_OnChatRoute_KeepTheirOrderAmongEvents()
    {
        var upstream = ChatChunks.Content("a") + "id: 1\n\n" + ChatChunks.Content("b") + "retry: 500\n\nid: 2\nevent: x\n\n" + ChatChunks.Content("c") + "data: [DONE]\n\n";
        var (_, client) = await RelayAsync(s_chat, upstream);
        var items = await WhatwgEventsAsync(client);
        Assert.Equal(["a", "b", "c"], items.SkipLast(1).Select(static i => ClientContent.ContentOf(Encoding.UTF8.GetBytes(i.Data))));
        Assert.Equal(["", "1", "2", "2"], items.Select(static i => i.LastEventId));
        Assert.All(items.Skip(2), static i => Assert.Equal(TimeSpan.FromMilliseconds(500), i.ReconnectionInterval));
    }

    /// <summary>What a WHATWG client dispatches: each event's data, the source's last event ID and reconnection time then.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientThatLeavesRightAfterDone_IsNotLoggedAsEndedEarly_AndTheStreamCompleted(bool leaveBeforeTheFinalFlush)
    {
        // The client reads [DONE] and resets. The upstream ends cleanly only after that, so the
        // final flush finds the client gone. Control (leaveBeforeTheFinalFlush false): the client stays, nothing fails.
        var time = new FakeTimeProvider();
        var client = new ClientThatLeavesAfterDone(leaveBeforeTheFinalFlush);
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(client);
        var upstreamBody = new GatedUpstreamBody(Encoding.UTF8.GetBytes(ChatChunks.Content("hi") + "data: [DONE]\n\n"), client.DoneFlushed);
        using var response = new HttpResponseMessage { Content = new StreamContent(upstreamBody) };
        using var lifetime = new StreamLifetime(time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        using var pipeline = new StreamEventPipeline(s_chat, time);
        var logger = new ListLogger();

        var reason = await new SseStreamRelay(time, logger).RunAsync(context, response, pipeline, lifetime).WaitAsync(Deadline.Default);

        Assert.Equal(StreamEndReason.Completed, reason);
        Assert.DoesNotContain(logger.EventNames, n => n is "StreamEndedWithError" or "UpstreamTruncated");
        var received = Encoding.UTF8.GetString(client.ToArray());
        Assert.EndsWith("data: [DONE]\n\n", received, StringComparison.Ordinal);
    }

    internal static async Task<List<(string Data, string LastEventId, TimeSpan? ReconnectionInterval)>> WhatwgEventsAsync(string sse)
    {
        var items = new List<(string, string, TimeSpan?)>();
        var parser = SseParser.Create(new MemoryStream(Encoding.UTF8.GetBytes(sse)));
        await foreach (var item in parser.EnumerateAsync())
        {
            items.Add((item.Data, parser.LastEventId, parser.ReconnectionInterval == Timeout.InfiniteTimeSpan ? null : parser.ReconnectionInterval));
        }

        return items;
    }

    private static byte[] Concat(params object[] parts)
        => [.. parts.SelectMany(static p => p is string s ? Encoding.UTF8.GetBytes(s) : (byte[])p)];

    internal static Task<(StreamEndReason Reason, string Client)> RelayAsync(StreamPipelineSettings settings, string upstream)
        => RelayAsync(settings, Encoding.UTF8.GetBytes(upstream));

    /// <summary>Relays a whole upstream body that then ends cleanly; returns how the stream ended and what the client got.</summary>
    private static async Task<(StreamEndReason Reason, string Client)> RelayAsync(StreamPipelineSettings settings, byte[] upstream)
    {
        var time = new FakeTimeProvider();
        var client = new MemoryStream();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(client));
        using var response = new HttpResponseMessage { Content = new ByteArrayContent(upstream) };
        using var lifetime = new StreamLifetime(time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        using var pipeline = new StreamEventPipeline(settings, time);
        var reason = await new SseStreamRelay(time, NullLogger<SseStreamRelay>.Instance)
            .RunAsync(context, response, pipeline, lifetime).WaitAsync(Deadline.Default);
        return (reason, Encoding.UTF8.GetString(client.ToArray()));
    }

    /// <summary>
    /// A client that receives everything up to and including [DONE], then is gone: as Kestrel does for a connection the
    /// client reset, every later flush reports the output completed.
    /// </summary>
    private sealed class ClientThatLeavesAfterDone : PipeWriter, IHttpResponseBodyFeature
    {
        private readonly MemoryStream _received = new();
        private readonly PipeWriter _inner;
        private readonly bool _leave;
        private readonly TaskCompletionSource _doneFlushed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _gone;

        public ClientThatLeavesAfterDone(bool leave)
        {
            _leave = leave;
            _inner = PipeWriter.Create(_received, new StreamPipeWriterOptions(leaveOpen: true));
        }

        private PipeWriter Inner => _inner;

        public Task DoneFlushed => _doneFlushed.Task;

        public byte[] ToArray() => _received.ToArray();

        Stream IHttpResponseBodyFeature.Stream => throw new NotSupportedException();

        PipeWriter IHttpResponseBodyFeature.Writer => this;

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => Inner.UnflushedBytes;

        public override void Advance(int bytes) => Inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => Inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => Inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => Inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => Inner.Complete(exception);

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            if (_gone)
            {
                return new FlushResult(isCanceled: false, isCompleted: true);
            }

            var result = await Inner.FlushAsync(cancellationToken);
            if (Encoding.UTF8.GetString(_received.ToArray()).Contains("data: [DONE]", StringComparison.Ordinal))
            {
                _gone = _leave;
                _doneFlushed.TrySetResult();
            }

            return result;
        }

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => Task.CompletedTask;
    }

    /// <summary>An upstream body that sends its bytes, then ends cleanly only once <paramref name="release"/> completes.</summary>
    private sealed class GatedUpstreamBody(byte[] body, Task release) : Stream
    {
        private bool _sent;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            if (!_sent)
            {
                _sent = true;
                body.CopyTo(buffer);
                return body.Length;
            }

            await release.WaitAsync(cancellationToken);
            return 0;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private sealed class ListLogger : ILogger<SseStreamRelay>
    {
        public List<string> EventNames { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (EventNames)
            {
                EventNames.Add(eventId.Name ?? string.Empty);
            }
        }
    }
}

using System.IO.Pipelines;
using System.Net.Http;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;
using Relay.Middleware.Streaming;
using Relay.Middleware.Tests.Support;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Tests.Errors;

/// <summary>
/// The one error table (issue 12, part 3): every stream end reason and every forwarder error has one row, the codes
/// clients already see stay as they were, and the relay loop tells the client the table's row, before the first byte
/// and as the final event.
/// </summary>
public sealed class RelayErrorTableTests
{
    public static TheoryData<StreamEndReason> EndReasons() => [.. Enum.GetValues<StreamEndReason>()];

    public static TheoryData<ForwarderError> ForwarderErrors() => [.. Enum.GetValues<ForwarderError>().Where(static e => e != ForwarderError.None)];

    /// <summary>The end reasons that leave a client reading, so that it can be told.</summary>
    public static TheoryData<StreamEndReason> ReasonsTheClientIsTold() =>
    [
        StreamEndReason.FirstTokenTimeout, StreamEndReason.IdleTimeout, StreamEndReason.MaxDurationTimeout,
        StreamEndReason.UpstreamError, StreamEndReason.RelayShutdown,
    ];

    [Theory]
    [MemberData(nameof(EndReasons))]
    public void EveryEndReason_HasOneRow_AndOnlyAGoodEndHasNoError(StreamEndReason reason)
    {
        var row = RelayErrorTable.ForEndReason(reason);
        if (reason is StreamEndReason.None or StreamEndReason.Completed)
        {
            Assert.Null(row);
            Assert.Equal(RelayErrorTable.ForEndReason(StreamEndReason.UpstreamError), RelayErrorTable.ForFailedEnd(reason));
            return;
        }

        AssertOpenAIRow(row);
        Assert.Equal(row!.Value.Code, reason == StreamEndReason.UpstreamError ? "upstream_disconnected" : RelayErrorTable.EndReasonName(reason));
        Assert.NotEqual("unknown", RelayErrorTable.EndReasonName(reason));
    }

    [Theory]
    [MemberData(nameof(ForwarderErrors))]
    public void EveryForwarderError_HasOneRow_UnlessTheClientLeft(ForwarderError error)
    {
        AssertOpenAIRow(RelayErrorTable.ForForwarderError(error, StreamEndReason.None));
        AssertOpenAIRow(RelayErrorTable.ForForwarderError(error, StreamEndReason.UpstreamError));
        Assert.Null(RelayErrorTable.ForForwarderError(error, StreamEndReason.ClientCancelled));

        // A reason Relay set itself says more than the forwarder's error.
        foreach (var reason in new[] { StreamEndReason.FirstTokenTimeout, StreamEndReason.MaxDurationTimeout, StreamEndReason.RelayShutdown })
        {
            Assert.Equal(RelayErrorTable.ForEndReason(reason), RelayErrorTable.ForForwarderError(error, reason));
        }
    }

    /// <summary>The statuses and codes clients and the integration tests already rely on.</summary>
    [Theory]
    [InlineData(ForwarderError.Request, 0, 502, "upstream_error", "upstream_unreachable")]
    [InlineData(ForwarderError.RequestCreation, 0, 502, "upstream_error", "upstream_unreachable")]
    [InlineData(ForwarderError.RequestTimedOut, 0, 504, "timeout", "upstream_timeout")]
    [InlineData(ForwarderError.NoAvailableDestinations, 0, 503, "upstream_error", "no_upstream")]
    [InlineData(ForwarderError.RequestBodyClient, 413, 413, "invalid_request_error", "request_too_large")]
    [InlineData(ForwarderError.RequestBodyCanceled, 408, 408, "timeout", "request_body_timeout")]
    [InlineData(ForwarderError.RequestBodyClient, 0, 400, "invalid_request_error", "invalid_body")]
    [InlineData(ForwarderError.ResponseBodyDestination, 0, 502, "upstream_error", "upstream_error")]
    public void ForwarderErrorRows_KeepTheStatusAndCodeClientsSee(ForwarderError error, int rejected, int status, string type, string code)
    {
        var row = RelayErrorTable.ForForwarderError(error, StreamEndReason.None, rejected)!.Value;
        Assert.Equal((status, type, code), (row.Status, row.Type, row.Code));
    }

    [Theory]
    [InlineData(StreamEndReason.FirstTokenTimeout, 504, "timeout")]
    [InlineData(StreamEndReason.IdleTimeout, 504, "timeout")]
    [InlineData(StreamEndReason.MaxDurationTimeout, 504, "timeout")]
    [InlineData(StreamEndReason.RelayShutdown, 503, "relay_shutdown")]
    [InlineData(StreamEndReason.UpstreamError, 502, "upstream_error")]
    public void EndReasonRows_KeepTheStatusAndTypeClientsSee(StreamEndReason reason, int status, string type)
    {
        var row = RelayErrorTable.ForEndReason(reason)!.Value;
        Assert.Equal((status, type), (row.Status, row.Type));
    }

    [Fact]
    public void RequestBodyTooLarge_NamesTheLimitWhenKnown()
        => Assert.Equal("The request body is larger than the limit of 1024 bytes.", RelayErrorTable.ForRequestBody(413, 1024).Message);

    [Theory]
    [MemberData(nameof(ReasonsTheClientIsTold))]
    public async Task StreamEndedBeforeTheFirstByte_AnswersTheTablesRow_AsAnHttpError(StreamEndReason reason)
    {
        using var run = new BlockedStream(firstChunk: null);
        run.Lifetime.Cancel(reason);
        var outcome = await run.RunAsync();

        Assert.Equal(reason, outcome);
        var row = RelayErrorTable.ForEndReason(reason)!.Value;
        Assert.Equal(row.Status, run.Context.Response.StatusCode);
        AssertErrorObject(row, run.Received());
    }

    [Theory]
    [MemberData(nameof(ReasonsTheClientIsTold))]
    public async Task StreamEndedAfterTheFirstEvent_EndsWithTheTablesRow_AsTheFinalEvent(StreamEndReason reason)
    {
        using var run = new BlockedStream(firstChunk: ChatChunks.Content("hi"));
        var relaying = run.RunAsync();
        await run.FirstEventReceived.WaitAsync(Deadline.Default);
        run.Lifetime.Cancel(reason);
        Assert.Equal(reason, await relaying);

        var events = PipelineDriver.ParseEvents(run.Received());
        Assert.Equal("hi", ClientContent.Join(events));
        AssertErrorObject(RelayErrorTable.ForEndReason(reason)!.Value, events[^1]);
    }

    [Theory]
    [InlineData(StreamEndReason.ClientCancelled)]
    [InlineData(StreamEndReason.WriteStallTimeout)]
    public async Task StreamWhoseClientStoppedReading_GetsNoErrorEvent(StreamEndReason reason)
    {
        using var run = new BlockedStream(firstChunk: ChatChunks.Content("hi"));
        var relaying = run.RunAsync();
        await run.FirstEventReceived.WaitAsync(Deadline.Default);
        run.Lifetime.Cancel(reason);
        Assert.Equal(reason, await relaying);
        Assert.Equal(ChatChunks.Content("hi"), Encoding.UTF8.GetString(run.Received()));
    }

    private static void AssertOpenAIRow(RelayErrorDescription? row)
    {
        Assert.NotNull(row);
        Assert.InRange(row!.Value.Status, 400, 599);
        Assert.False(string.IsNullOrEmpty(row.Value.Type));
        Assert.False(string.IsNullOrEmpty(row.Value.Code));
        Assert.EndsWith(".", row.Value.Message, StringComparison.Ordinal);
    }

    private static void AssertErrorObject(RelayErrorDescription row, byte[] json)
    {
        using var document = JsonDocument.Parse(json);
        var error = document.RootElement.GetProperty("error");
        Assert.Equal(row.Type, error.GetProperty("type").GetString());
        Assert.Equal(row.Code, error.GetProperty("code").GetString());

        // The upstream's failure may be its connection's (a read threw) or its body's: the row says which.
        var message = error.GetProperty("message").GetString();
        Assert.Contains(message, new[] { row.Message, RelayErrorTable.ForFailedEnd(StreamEndReason.UpstreamError, connectionFailed: true).Message });
    }

    /// <summary>
    /// One relayed stream whose upstream sends <c>firstChunk</c> (if any), then nothing until the stream is cancelled;
    /// the client is a pipe the test reads.
    /// </summary>
    private sealed class BlockedStream : IDisposable
    {
        private readonly FakeTimeProvider _time = new();
        private readonly Pipe _client = new();
        private readonly MemoryStream _received = new();
        private readonly HttpResponseMessage _upstream;
        private readonly StreamEventPipeline _pipeline;
        private readonly TaskCompletionSource _firstEvent = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public BlockedStream(string? firstChunk)
        {
            Context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(_client.Writer.AsStream()));
            _upstream = new HttpResponseMessage { Content = new StreamContent(new SilentAfter(firstChunk is null ? [] : Encoding.UTF8.GetBytes(firstChunk))) };
            Lifetime = new StreamLifetime(_time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
            _pipeline = new StreamEventPipeline(new StreamPipelineSettings { CoalescingEnabled = false }, _time);
        }

        public DefaultHttpContext Context { get; } = new();

        public StreamLifetime Lifetime { get; }

        public Task FirstEventReceived => _firstEvent.Task;

        public async Task<StreamEndReason> RunAsync()
        {
            var reading = ReadClientAsync();
            try
            {
                return await new SseStreamRelay(_time, NullLogger<SseStreamRelay>.Instance)
                    .RunAsync(Context, _upstream, _pipeline, Lifetime).WaitAsync(Deadline.Default);
            }
            finally
            {
                await Context.Response.BodyWriter.FlushAsync();
                await _client.Writer.CompleteAsync();
                await reading;
            }
        }

        public byte[] Received() => _received.ToArray();

        public void Dispose()
        {
            _pipeline.Dispose();
            _upstream.Dispose();
            Lifetime.Dispose();
        }

        private async Task ReadClientAsync()
        {
            while (true)
            {
                var result = await _client.Reader.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    _received.Write(segment.Span);
                }

                _client.Reader.AdvanceTo(result.Buffer.End);
                if (_received.ToArray().AsSpan().IndexOf("\n\n"u8) >= 0)
                {
                    _firstEvent.TrySetResult();
                }

                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
    }

    /// <summary>An upstream body that sends its bytes, then waits for the read to be cancelled.</summary>
    private sealed class SilentAfter(byte[] body) : ReadOnlyTestStream
    {
        private bool _sent;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_sent && body.Length > 0)
            {
                if (buffer.IsEmpty)
                {
                    return 0;
                }

                _sent = true;
                body.CopyTo(buffer);
                return body.Length;
            }

            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
            return 0;
        }
    }
}

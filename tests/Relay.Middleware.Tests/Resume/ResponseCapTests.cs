using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Resume;
using Relay.Middleware.State;

namespace Relay.Middleware.Tests.Resume;

/// <summary>
/// <c>Resume:MaxResponseSeconds</c> on the response that starts a resumable stream, on a <see cref="FakeTimeProvider"/>:
/// when the cap is reached the client's response ends after the last whole event, with a retry-only block, and the
/// stream goes on detached. Redis is not reachable here (events are numbered and written to the client all the same).
/// </summary>
public sealed class ResponseCapTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new();
    private readonly RedisState _redis = new(Options.Create(new RelayOptions { State = { Redis = "127.0.0.1:1,connectTimeout=200" } }), NullLogger<RedisState>.Instance);
    private readonly StreamLifetime _lifetime;
    private readonly ResumableStream _stream;

    public ResponseCapTests()
    {
        _lifetime = new StreamLifetime(_time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        _stream = new ResumableStream("rs_AAAAAAAAAAAAAAAAAAAAAA", _redis, new ResumeOptions { Enabled = true, MaxResponseSeconds = 4 }, _lifetime, _time, NullLogger.Instance);
    }

    public async ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _lifetime.Dispose();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task CapReached_ClientHasTheWholeEventsThenOnlyARetryBlock_ItsResponseIsComplete_AndLaterEventsOnlyGoOn()
    {
        var client = new ClientBody(new Pipe());
        var body = new ResumableResponseBody(client, () => _stream, new ResponseCap(4, _time, _time.GetTimestamp()));
        await WriteAsync(body, "data: 1\n\n");
        _time.Advance(TimeSpan.FromSeconds(3.9));
        await WriteAsync(body, ": keep-alive\n\n"); // A heartbeat is no event: it does not move the cap.
        await WriteAsync(body, "data: 2"); // Half an event when the cap comes.
        Assert.False(client.Completion.IsCompleted);

        _time.Advance(TimeSpan.FromSeconds(0.1));
        await client.Completion.WaitAsync(Deadline.Default);

        Assert.Equal("data: 1\nid: rs_AAAAAAAAAAAAAAAAAAAAAA:1\n\n: keep-alive\n\nretry: 250\n\n", await ReadAllAsync(client.Pipe));
        Assert.False(_stream.Attached); // Detached: Resume:DetachedSeconds runs until a reader resumes.
        await WriteAsync(body, "b\n\ndata: 3\n\n"); // The stream goes on, without this client.
        await body.StopCapAsync();
    }

    [Fact]
    public async Task CapReachedWhileAFlushWaitsForTheClient_TheResponseEndsAfterThatWholeEvent()
    {
        var client = new ClientBody(new Pipe(new PipeOptions(pauseWriterThreshold: 16, resumeWriterThreshold: 8)));
        var body = new ResumableResponseBody(client, () => _stream, new ResponseCap(4, _time, _time.GetTimestamp()));
        var flush = WriteAsync(body, "data: a longer first event\n\n").AsTask(); // Backpressure: the flush waits.
        Assert.False(flush.IsCompleted);

        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(client.Completion.IsCompleted); // Not inside the flush.

        var text = ReadAllAsync(client.Pipe);
        await flush.WaitAsync(Deadline.Default);
        await client.Completion.WaitAsync(Deadline.Default);
        Assert.Equal("data: a longer first event\nid: rs_AAAAAAAAAAAAAAAAAAAAAA:1\n\nretry: 250\n\n", await text);
    }

    [Fact]
    public async Task Control_WithoutACap_TimePassing_DoesNotEndTheResponse()
    {
        var client = new ClientBody(new Pipe());
        var body = new ResumableResponseBody(client, () => _stream);
        await WriteAsync(body, "data: 1\n\n");
        _time.Advance(TimeSpan.FromHours(1));
        await WriteAsync(body, "data: 2\n\n");
        Assert.False(client.Completion.IsCompleted);
        Assert.True(_stream.Attached);
        client.Pipe.Writer.Complete();
        Assert.Equal("data: 1\nid: rs_AAAAAAAAAAAAAAAAAAAAAA:1\n\ndata: 2\nid: rs_AAAAAAAAAAAAAAAAAAAAAA:2\n\n", await ReadAllAsync(client.Pipe));
    }

    [Fact]
    public async Task StoppedCap_AfterTheStreamEnded_NeverEndsTheResponse()
    {
        var client = new ClientBody(new Pipe());
        var body = new ResumableResponseBody(client, () => _stream, new ResponseCap(4, _time, _time.GetTimestamp()));
        await WriteAsync(body, "data: [DONE]\n\n");
        await body.StopCapAsync();
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.False(client.Completion.IsCompleted);
        Assert.True(_stream.Attached);
    }

    [Theory]
    [InlineData(0, "HTTP/1.1", false)]
    [InlineData(4, "HTTP/1.0", false)] // Its body ends only when the connection closes.
    [InlineData(4, "HTTP/1.1", true)]
    [InlineData(4, "HTTP/2", true)]
    public void Cap_AppliesWhenSetAndTheProtocolCanEndAResponseOnALiveConnection(double seconds, string protocol, bool applies)
    {
        var request = new DefaultHttpContext().Request;
        request.Protocol = protocol;
        var cap = ResponseCap.For(seconds, request, _time, _time.GetTimestamp());
        Assert.Equal(applies, cap is not null);
        if (cap is not null)
        {
            Assert.Equal(TimeSpan.FromSeconds(4), cap.Remaining);
            _time.Advance(TimeSpan.FromSeconds(3.5));
            Assert.False(cap.Reached);
            _time.Advance(TimeSpan.FromSeconds(0.5));
            Assert.True(cap.Reached);
        }
    }

    [Theory]
    [InlineData("HTTP/1.1", "close")]
    [InlineData("HTTP/2", "")]
    public void ResponseThatStartsACappedStream_OnHttp11_ClosesItsConnection(string protocol, string connection)
    {
        var context = new DefaultHttpContext();
        context.Request.Protocol = protocol;
        ResponseCap.PrepareHeaders(context.Response);
        Assert.Equal(connection, context.Response.Headers.Connection.ToString());
    }

    [Theory]
    [InlineData(0, 30, true)]
    [InlineData(25, 30, true)]
    [InlineData(1, 1, true)]
    [InlineData(0.5, 30, false)]
    [InlineData(-1, 30, false)]
    [InlineData(double.NaN, 30, false)]
    [InlineData(double.PositiveInfinity, 30, false)]
    [InlineData(25, 0, false)] // Between two responses the stream has no reader: it would stop at once.
    public void MaxResponseSeconds_IsZeroOrAtLeastOne_WithADetachedTimeOfAtLeastOne(double maxResponseSeconds, double detachedSeconds, bool valid)
    {
        var problems = ResumeOptionsRules.Problems(new ResumeOptions { MaxResponseSeconds = maxResponseSeconds, DetachedSeconds = detachedSeconds }, "Relay:Resume:").ToList();
        Assert.Equal(valid, problems.Count == 0);
        Assert.All(problems, p => Assert.StartsWith("Relay:Resume:MaxResponseSeconds ", p, StringComparison.Ordinal));
    }

    private static ValueTask<FlushResult> WriteAsync(ResumableResponseBody body, string text) => body.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));

    private static async Task<string> ReadAllAsync(Pipe pipe)
    {
        var text = new StringBuilder();
        while (true)
        {
            var result = await pipe.Reader.ReadAsync();
            foreach (var segment in result.Buffer)
            {
                text.Append(Encoding.UTF8.GetString(segment.Span));
            }

            pipe.Reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return text.ToString();
            }
        }
    }

    /// <summary>The server's response body: a pipe the test reads, and whether the response was completed.</summary>
    private sealed class ClientBody(Pipe pipe) : IHttpResponseBodyFeature
    {
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Pipe Pipe => pipe;

        public Task Completion => _completed.Task;

        public Stream Stream => pipe.Writer.AsStream();

        public PipeWriter Writer => pipe.Writer;

        public async Task CompleteAsync()
        {
            await pipe.Writer.CompleteAsync();
            _completed.TrySetResult();
        }

        public void DisableBuffering()
        {
        }

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;
    }
}

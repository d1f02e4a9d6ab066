using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The response side of one bridged upstream request: status and headers as YARP sets them, and a body that
/// goes into a bounded pipe which the session reads and turns into WebSocket frames. The pipe is the response's
/// send queue: when the client is slow it fills, the relay loop's flush waits (and its write-stall clock runs),
/// and Relay stops reading the upstream, exactly as with Kestrel's response buffer on the SSE path.
/// </summary>
internal sealed class BridgedResponseFeature : IHttpResponseFeature, IHttpResponseBodyFeature
{
    private readonly Pipe _pipe;
    private readonly StartTrackingWriter _writer;
    private readonly Stream _stream;
    private List<(Func<object, Task> Callback, object State)>? _onStarting;

    public BridgedResponseFeature(int maxQueuedBytes)
    {
        _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: maxQueuedBytes, resumeWriterThreshold: maxQueuedBytes / 2,
            minimumSegmentSize: 4096, useSynchronizationContext: false));
        _writer = new StartTrackingWriter(_pipe.Writer, this);
        _stream = _writer.AsStream();
    }

    /// <summary>The session's end of the body.</summary>
    public PipeReader Reader => _pipe.Reader;

    public int StatusCode { get; set; } = StatusCodes.Status200OK;

    public string? ReasonPhrase { get; set; }

    public IHeaderDictionary Headers { get; set; } = new HeaderDictionary();

    [Obsolete("Use IHttpResponseBodyFeature.Stream instead.")]
    Stream IHttpResponseFeature.Body
    {
        get => _stream;
        set => throw new NotSupportedException("The bridged response body cannot be replaced.");
    }

    public bool HasStarted { get; private set; }

    public Stream Stream => _stream;

    public PipeWriter Writer => _writer;

    public void OnStarting(Func<object, Task> callback, object state) => (_onStarting ??= []).Add((callback, state));

    public void OnCompleted(Func<object, Task> callback, object state)
    {
        // Nothing on the forwarding path registers completion callbacks; the session owns the response's end.
    }

    public void DisableBuffering()
    {
        // Every flush already reaches the session.
    }

    public Task StartAsync(CancellationToken cancellationToken = default) => StartCoreAsync();

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => SendFileFallback.SendFileAsync(_stream, path, offset, count, cancellationToken);

    public async Task CompleteAsync() => await _writer.CompleteAsync();

    /// <summary>The forwarding path is done with the response: the session reads to the end.</summary>
    public ValueTask EndAsync() => _pipe.Writer.CompleteAsync();

    private async Task StartCoreAsync()
    {
        if (HasStarted)
        {
            return;
        }

        if (_onStarting is { } callbacks)
        {
            _onStarting = null;
            for (var i = callbacks.Count - 1; i >= 0; i--)
            {
                await callbacks[i].Callback(callbacks[i].State);
            }
        }

        HasStarted = true;
    }

    /// <summary>The pipe's writer, marking the response started on its first flush (as Kestrel does on its first write).</summary>
    private sealed class StartTrackingWriter(PipeWriter inner, BridgedResponseFeature owner) : DelegatingPipeWriter(inner)
    {
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
            => owner.HasStarted ? Inner.FlushAsync(cancellationToken) : StartThenFlushAsync(cancellationToken);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
            => owner.HasStarted ? Inner.WriteAsync(source, cancellationToken) : StartThenWriteAsync(source, cancellationToken);

        private async ValueTask<FlushResult> StartThenFlushAsync(CancellationToken cancellationToken)
        {
            await owner.StartCoreAsync();
            return await Inner.FlushAsync(cancellationToken);
        }

        private async ValueTask<FlushResult> StartThenWriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken)
        {
            await owner.StartCoreAsync();
            return await Inner.WriteAsync(source, cancellationToken);
        }
    }
}

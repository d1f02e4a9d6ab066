using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using Relay.Middleware.Requests;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.Accounting;

/// <summary>
/// The response body of a relayed stream, counting what the server (Kestrel) accepted for the client: the content
/// events written before a flush that completed. A flush that never completes (an HTTP/2 client that never opens its
/// flow-control window, a reader that stopped) holds bytes the client has not got, so what was written since the last
/// completed flush is not counted as delivered. What Kestrel accepted is an upper bound of what the client received:
/// Kestrel's response buffer and the network may still hold it (see the definition of "delivered" in docs/operations.md, "Observability").
/// </summary>
/// <remarks>
/// Every call passes straight to the server's writer; only <see cref="PipeWriter.FlushAsync"/> (and
/// <see cref="PipeWriter.WriteAsync"/>, which flushes) notes the count when it completes.
/// </remarks>
internal sealed class AcceptedDeliveryBody : IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly RelayRequestFeature _request;
    private readonly CountingWriter _writer;
    private long _accepted;

    public AcceptedDeliveryBody(IHttpResponseBodyFeature inner, RelayRequestFeature request)
    {
        _inner = inner;
        _request = request;
        _writer = new CountingWriter(inner.Writer, this);
    }

    /// <summary>Upstream content events whose content was written before a flush that completed.</summary>
    public long AcceptedContentEvents => Volatile.Read(ref _accepted);

    public Stream Stream => _inner.Stream;

    public PipeWriter Writer => _writer;

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => _inner.SendFileAsync(path, offset, count, cancellationToken);

    public Task CompleteAsync() => _inner.CompleteAsync();

    private long Written => _request.Accounting?.DeliveredContentEvents ?? 0;

    private ValueTask<FlushResult> Track(ValueTask<FlushResult> flush, long written)
    {
        if (flush.IsCompletedSuccessfully)
        {
            var result = flush.Result;
            OnFlushed(result, written);
            return new ValueTask<FlushResult>(result);
        }

        return AwaitAsync(flush, written);
    }

    private async ValueTask<FlushResult> AwaitAsync(ValueTask<FlushResult> flush, long written)
    {
        var result = await flush.ConfigureAwait(false);
        OnFlushed(result, written);
        return result;
    }

    private void OnFlushed(FlushResult result, long written)
    {
        // Cancelled: the flush gave up; completed: the client is gone and the bytes with it.
        if (!result.IsCanceled && !result.IsCompleted)
        {
            Volatile.Write(ref _accepted, written);
        }
    }

    private sealed class CountingWriter(PipeWriter inner, AcceptedDeliveryBody owner) : DelegatingPipeWriter(inner)
    {
        // The count is taken before the flush starts: everything written so far is what this flush hands over.
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            var written = owner.Written;
            return owner.Track(Inner.FlushAsync(cancellationToken), written);
        }

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            var written = owner.Written;
            return owner.Track(Inner.WriteAsync(source, cancellationToken), written);
        }
    }
}

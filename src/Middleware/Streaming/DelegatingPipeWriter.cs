using System.IO.Pipelines;

namespace Relay.Middleware.Streaming;

/// <summary>
/// A <see cref="PipeWriter"/> that passes every call straight to another: the base of response body writers that
/// only observe some calls (a flush that completed, the first flush), so that each overrides just those.
/// </summary>
internal abstract class DelegatingPipeWriter : PipeWriter
{
    protected DelegatingPipeWriter(PipeWriter inner) => Inner = inner;

    /// <summary>The writer every call goes to.</summary>
    protected PipeWriter Inner { get; }

    public override bool CanGetUnflushedBytes => Inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => Inner.UnflushedBytes;

    public override void Advance(int bytes) => Inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => Inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => Inner.GetSpan(sizeHint);

    public override void CancelPendingFlush() => Inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => Inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => Inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => Inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        => Inner.WriteAsync(source, cancellationToken);
}

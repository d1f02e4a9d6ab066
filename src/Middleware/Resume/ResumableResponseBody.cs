using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace Relay.Middleware.Resume;

/// <summary>
/// The response body of a request on a route with resumable streams. Until the stream turns out resumable (the
/// request asked for it and the response is a 200 event stream), and for every other request, each call passes
/// straight to the server's writer. A resumable stream's writes are held until the flush, split into events, and each
/// event goes to <see cref="ResumableStream.Emit"/> (numbered, kept in Redis, written to the client with its id);
/// comments (heartbeats) go to the client only. When the client is gone, flushes still succeed: the relay loop goes on
/// generating for the readers that will resume, instead of ending the stream as a client cancel. With a
/// <see cref="ResponseCap"/>, the client's response ends when the cap is reached, between two events, and the stream
/// goes on detached, as if the client had left.
/// </summary>
/// <remarks>Relay's chat pipeline writes whole events, each ending with a blank line (<c>\n\n</c>); a partial event waits for the next flush.</remarks>
internal sealed class ResumableResponseBody(IHttpResponseBodyFeature inner, Func<ResumableStream?> activate, ResponseCap? cap = null) : IHttpResponseBodyFeature
{
    private TeeWriter? _writer;

    public IHttpResponseBodyFeature Inner => inner;

    public Stream Stream => inner.Stream;

    public PipeWriter Writer => _writer ??= new TeeWriter(inner, activate, cap);

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => inner.SendFileAsync(path, offset, count, cancellationToken);

    public Task CompleteAsync() => inner.CompleteAsync();

    /// <summary>After the relay loop: the cap no longer ends the response (it ends now, or has ended).</summary>
    public Task StopCapAsync() => _writer?.StopCapAsync() ?? Task.CompletedTask;

    /// <summary>Writes the final event of a stopped stream to its still-attached client.</summary>
    public async Task WriteFinalAsync(ResumableStream stream)
    {
        if (stream.FinalEvent is not { } final || !stream.Attached)
        {
            return;
        }

        ResumableStream.WriteEvent(inner.Writer, final.Payload, stream.Id, final.Sequence);
        try
        {
            await inner.Writer.FlushAsync();
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
        }
    }

    private sealed class TeeWriter(IHttpResponseBodyFeature response, Func<ResumableStream?> activate, ResponseCap? cap) : PipeWriter
    {
        private readonly PipeWriter client = response.Writer;
        private byte[] _buffer = [];
        private int _length;
        private int _mode; // 0: undecided, 1: pass-through, 2: tee.
        private ResumableStream? _stream;

        // With a cap: its timer, and the gate that keeps the end of the response between two flushes (never mid-event).
        private SemaphoreSlim? _gate;
        private ITimer? _capTimer;
        private bool _capStopped;

        private bool Tee
        {
            get
            {
                if (_mode == 0)
                {
                    _stream = activate();
                    _mode = _stream is null ? 1 : 2;
                    if (_stream is not null && cap is not null)
                    {
                        _gate = new SemaphoreSlim(1, 1);
                        _capTimer = cap.StartTimer(static s => _ = ((TeeWriter)s!).EndAtCapAsync(), this);
                    }
                }

                return _mode == 2;
            }
        }

        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => Tee ? _length + (_stream!.Attached ? client.UnflushedBytes : 0) : client.UnflushedBytes;

        public override void Advance(int bytes)
        {
            if (Tee)
            {
                _length += bytes;
            }
            else
            {
                client.Advance(bytes);
            }
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => Tee ? Reserve(sizeHint) : client.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => Tee ? Reserve(sizeHint).Span : client.GetSpan(sizeHint);

        public override void CancelPendingFlush() => client.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => client.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => client.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
            => Tee ? FlushEventsAsync(cancellationToken) : client.FlushAsync(cancellationToken);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            if (!Tee)
            {
                return client.WriteAsync(source, cancellationToken);
            }

            source.Span.CopyTo(Reserve(source.Length).Span);
            _length += source.Length;
            return FlushEventsAsync(cancellationToken);
        }

        private Memory<byte> Reserve(int sizeHint)
        {
            var needed = _length + Math.Max(sizeHint, 256);
            if (_buffer.Length < needed)
            {
                Array.Resize(ref _buffer, Math.Max(needed, _buffer.Length * 2));
            }

            return _buffer.AsMemory(_length);
        }

        public async Task StopCapAsync()
        {
            if (_gate is null)
            {
                return;
            }

            await _gate.WaitAsync().ConfigureAwait(false);
            _capStopped = true;
            _gate.Release();
            _capTimer!.Dispose();
        }

        /// <summary>
        /// The cap is reached: the client's response ends here, after the last whole event, with a retry field; the
        /// stream goes on detached (Resume:DetachedSeconds, unless a reader resumes it).
        /// </summary>
        private async Task EndAtCapAsync()
        {
            var stream = _stream!;
            await _gate!.WaitAsync().ConfigureAwait(false);
            try
            {
                if (_capStopped || !stream.Attached)
                {
                    return;
                }

                stream.Detach(atResponseCap: true);
                client.Write(ResponseCap.RetryBlock);
                // The body ends as a normal one (HTTP/1.1's last chunk, HTTP/2's END_STREAM) while the request goes on.
                await response.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
            {
                // The client left meanwhile: it resumes, or the detached time ends the stream.
            }
            finally
            {
                _gate.Release();
            }
        }

        private ValueTask<FlushResult> FlushEventsAsync(CancellationToken cancellationToken)
            => _gate is null ? FlushEventsCoreAsync(cancellationToken) : FlushEventsGatedAsync(cancellationToken);

        private async ValueTask<FlushResult> FlushEventsGatedAsync(CancellationToken cancellationToken)
        {
            await _gate!.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                return await FlushEventsCoreAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _gate.Release();
            }
        }

        private async ValueTask<FlushResult> FlushEventsCoreAsync(CancellationToken cancellationToken)
        {
            var stream = _stream!;
            var attached = stream.Attached;
            var consumed = 0;
            while (true)
            {
                var end = _buffer.AsSpan(consumed, _length - consumed).IndexOf("\n\n"u8);
                if (end < 0)
                {
                    break;
                }

                var block = _buffer.AsSpan(consumed, end + 2);
                if (block[0] == (byte)':' && IsComment(block))
                {
                    // A comment (heartbeat): for the connection it keeps alive, not part of the stream.
                    if (attached)
                    {
                        client.Write(block);
                    }
                }
                else
                {
                    stream.Emit(block[..^1], attached ? client : null);
                }

                consumed += end + 2;
            }

            if (consumed > 0)
            {
                _buffer.AsSpan(consumed, _length - consumed).CopyTo(_buffer);
                _length -= consumed;
            }

            if (!attached)
            {
                return default;
            }

            try
            {
                var result = await client.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (result.IsCompleted)
                {
                    stream.Detach();
                }

                return result.IsCanceled ? result : default;
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // The client's connection failed: it may resume; generation goes on.
                stream.Detach();
                return default;
            }
        }

        private static bool IsComment(ReadOnlySpan<byte> block)
        {
            foreach (var line in block[..^2].Split((byte)'\n'))
            {
                if (block[line].Length > 0 && block[line][0] != (byte)':')
                {
                    return false;
                }
            }

            return true;
        }
    }
}

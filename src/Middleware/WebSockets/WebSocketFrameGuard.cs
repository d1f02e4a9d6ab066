using System.Buffers.Binary;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// Sits between the upgraded connection and the framework's WebSocket and follows the client's frames as they are
/// read, to enforce what the framework's server-side WebSocket does not:
/// <list type="bullet">
/// <item>a message beyond the limit fails the connection with 1009 ("a message that is too big for it to process",
/// RFC 6455 section 7.4.1) the moment a header announces it, before any payload arrives (the framework has no
/// limit and would wait for a 2^53-byte payload);</item>
/// <item>"The server MUST close the connection upon receiving a frame that is not masked" (section 5.1): 1002;</item>
/// <item>a close frame whose reason is not UTF-8 fails with 1007 (section 8.1; the framework answers 1002).</item>
/// </list>
/// </summary>
/// <remarks>
/// On a violation the guard writes the close frame itself (server frames are unmasked), under the same lock as the
/// WebSocket's own writes (each of its frames is one write), then ends the read side: the WebSocket sees the end
/// of the stream and stops, and <see cref="FailedWith"/> tells the session why. Everything else (reserved bits,
/// opcodes, control frame rules, UTF-8 of text messages) is validated by the framework's WebSocket.
/// </remarks>
internal sealed class WebSocketFrameGuard : Stream
{
    private readonly Stream _inner;
    private readonly long _maxMessageBytes;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _header = new byte[14];
    private int _headerLength;
    private bool _headerChecked;
    private bool _untracked;
    private long _frameLength;
    private int _maskOffset;
    private byte[]? _closePayload;
    private int _closeIndex;
    private long _payloadRemaining;
    private long _messageBytes;
    private bool _messageEndsWithFrame;
    private volatile bool _closed;

    public WebSocketFrameGuard(Stream inner, long maxMessageBytes)
    {
        _inner = inner;
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>The close status the guard failed the connection with (its close frame has been sent), or null.</summary>
    public System.Net.WebSockets.WebSocketCloseStatus? FailedWith { get; private set; }

    /// <summary>The upgraded connection itself (for the final drain after a close).</summary>
    public Stream Inner => _inner;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_closed)
        {
            return 0;
        }

        var read = await _inner.ReadAsync(buffer, cancellationToken);
        if (read > 0 && Track(buffer.Span[..read]) is { } failure)
        {
            await FailAsync(failure);
            return 0;
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_closed)
            {
                throw new IOException("The WebSocket was closed: a client message exceeded the size limit.");
            }

            await _inner.WriteAsync(buffer, cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override Task FlushAsync(CancellationToken cancellationToken) => _inner.FlushAsync(cancellationToken);

    public override void Flush() => _inner.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Follows frames through <paramref name="data"/>; returns the close status of a violation, or null.</summary>
    internal System.Net.WebSockets.WebSocketCloseStatus? Track(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && !_untracked)
        {
            if (_payloadRemaining > 0)
            {
                var skip = (int)Math.Min(_payloadRemaining, data.Length);
                if (_closePayload is { } close)
                {
                    for (var i = 0; i < skip; i++, _closeIndex++)
                    {
                        close[_closeIndex] = (byte)(data[i] ^ _header[_maskOffset + (_closeIndex & 3)]);
                    }
                }

                _payloadRemaining -= skip;
                data = data[skip..];
                if (_payloadRemaining == 0 && _closePayload is { } complete)
                {
                    _closePayload = null;
                    // "the data [after the status code] ... is not guaranteed to be human readable" but MUST be UTF-8.
                    if (complete.Length > 2 && !System.Text.Unicode.Utf8.IsValid(complete.AsSpan(2)))
                    {
                        return System.Net.WebSockets.WebSocketCloseStatus.InvalidPayloadData;
                    }
                }

                continue;
            }

            // Collect the header: 2 bytes, then the extended length (0, 2 or 8 bytes) and the mask key (0 or 4).
            var size = _headerLength < 2 ? 2 : HeaderSize(_header);
            var take = Math.Min(size - _headerLength, data.Length);
            data[..take].CopyTo(_header.AsSpan(_headerLength));
            _headerLength += take;
            data = data[take..];
            if (_headerLength < 2)
            {
                continue;
            }

            // Judge the length as soon as it is known, before the mask key and the payload.
            if (!_headerChecked && _headerLength >= LengthEnd(_header))
            {
                _headerChecked = true;
                _frameLength = PayloadLength(_header);
                if (_frameLength < 0)
                {
                    // An invalid length (most significant bit set): the WebSocket fails the connection with 1002.
                    _untracked = true;
                    return null;
                }

                if ((_header[1] & 0x80) == 0)
                {
                    return System.Net.WebSockets.WebSocketCloseStatus.ProtocolError;
                }

                var opcode = _header[0] & 0x0F;
                if (opcode < 0x8)
                {
                    if (opcode != 0 || _messageEndsWithFrame)
                    {
                        _messageBytes = 0;
                    }

                    _messageBytes += _frameLength;
                    _messageEndsWithFrame = (_header[0] & 0x80) != 0;
                    if (_messageBytes > _maxMessageBytes)
                    {
                        return System.Net.WebSockets.WebSocketCloseStatus.MessageTooBig;
                    }
                }
            }

            if (_headerLength < HeaderSize(_header))
            {
                continue;
            }

            _payloadRemaining = _frameLength;
            _maskOffset = LengthEnd(_header);
            _closePayload = (_header[0] & 0x0F) == 0x8 && _frameLength is > 2 and <= 125 ? new byte[_frameLength] : null;
            _closeIndex = 0;
            _headerLength = 0;
            _headerChecked = false;
        }

        return null;
    }

    private static int LengthEnd(ReadOnlySpan<byte> header)
    {
        var len7 = header[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    }

    private static int HeaderSize(ReadOnlySpan<byte> header)
        => LengthEnd(header) + ((header[1] & 0x80) != 0 ? 4 : 0);

    private static long PayloadLength(ReadOnlySpan<byte> header)
    {
        var len7 = header[1] & 0x7F;
        return len7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(header[2..]),
            127 => BinaryPrimitives.ReadInt64BigEndian(header[2..]),
            _ => len7,
        };
    }

    private async Task FailAsync(System.Net.WebSockets.WebSocketCloseStatus status)
    {
        FailedWith = status;
        await _writeLock.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            // FIN + close opcode, unmasked, payload: the status code (no reason).
            byte[] frame = [0x88, 2, (byte)((int)status >> 8), (byte)status];
            await _inner.WriteAsync(frame);
            await _inner.FlushAsync();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            _writeLock.Release();
        }
    }

    protected override void Dispose(bool disposing)
    {
        // The session owns the upgraded connection and may still drain it after a close: do not dispose it here.
        _closed = true;
        base.Dispose(disposing);
    }
}

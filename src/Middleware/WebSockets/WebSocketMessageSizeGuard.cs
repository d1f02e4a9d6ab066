using System.Buffers.Binary;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// Sits between the upgraded connection and the framework's WebSocket and follows the client's frame headers as
/// they are read, so that a message beyond the limit fails the connection with 1009 ("a message that is too big
/// for it to process", RFC 6455 section 7.4.1) the moment its header announces it, before any payload arrives. The
/// framework's WebSocket has no message limit and would wait for a 2^53-byte payload.
/// </summary>
/// <remarks>
/// On a violation the guard writes the close frame itself (server frames are unmasked), under the same lock as the
/// WebSocket's own writes (each of its frames is one write), then ends the read side: the WebSocket sees the end
/// of the stream and stops, and <see cref="TooLarge"/> tells the session why. Everything else (masking, opcodes,
/// control frames, UTF-8) is validated by the framework's WebSocket.
/// </remarks>
internal sealed class WebSocketMessageSizeGuard : Stream
{
    private readonly Stream _inner;
    private readonly long _maxMessageBytes;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly byte[] _header = new byte[14];
    private int _headerLength;
    private long _payloadRemaining;
    private long _messageBytes;
    private bool _messageEndsWithFrame;
    private volatile bool _closed;

    public WebSocketMessageSizeGuard(Stream inner, long maxMessageBytes)
    {
        _inner = inner;
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>Whether the client announced a message beyond the limit (the 1009 close frame has been sent).</summary>
    public bool TooLarge { get; private set; }

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
        if (read > 0 && !Track(buffer.Span[..read]))
        {
            await CloseTooLargeAsync();
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

    /// <summary>Follows frame boundaries through <paramref name="data"/>; false when a data message exceeds the limit.</summary>
    internal bool Track(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (_payloadRemaining > 0)
            {
                var skip = (int)Math.Min(_payloadRemaining, data.Length);
                _payloadRemaining -= skip;
                data = data[skip..];
                continue;
            }

            // Collect the header: 2 bytes, then the extended length (0, 2 or 8 bytes) and the mask key (0 or 4).
            var needed = _headerLength < 2 ? 2 : HeaderSize(_header);
            var take = Math.Min(needed - _headerLength, data.Length);
            data[..take].CopyTo(_header.AsSpan(_headerLength));
            _headerLength += take;
            data = data[take..];
            if (_headerLength < needed || (needed == 2 && HeaderSize(_header) > 2))
            {
                continue;
            }

            var length = PayloadLength(_header);
            var opcode = _header[0] & 0x0F;
            var fin = (_header[0] & 0x80) != 0;
            _headerLength = 0;
            if (length < 0)
            {
                // An invalid length (most significant bit set): the WebSocket fails the connection with 1002.
                return true;
            }

            _payloadRemaining = length;
            if (opcode >= 0x8)
            {
                continue;
            }

            if (opcode != 0 || _messageEndsWithFrame)
            {
                _messageBytes = 0;
            }

            _messageBytes += length;
            _messageEndsWithFrame = fin;
            if (_messageBytes > _maxMessageBytes)
            {
                return false;
            }
        }

        return true;
    }

    private static int HeaderSize(ReadOnlySpan<byte> header)
    {
        var len7 = header[1] & 0x7F;
        var masked = (header[1] & 0x80) != 0;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    }

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

    private async Task CloseTooLargeAsync()
    {
        TooLarge = true;
        await _writeLock.WaitAsync();
        try
        {
            if (_closed)
            {
                return;
            }

            _closed = true;
            // FIN + close opcode, unmasked, payload: status 1009 and a short reason.
            byte[] frame = [0x88, 2 + 15, 0x03, 0xF1, .. "message too big"u8];
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

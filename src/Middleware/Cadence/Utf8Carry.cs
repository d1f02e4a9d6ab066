namespace Relay.Middleware.Cadence;

/// <summary>
/// The end of a text field that could not be emitted yet because a character continues in the next event:
/// the leading bytes of an incomplete UTF-8 sequence, or a high surrogate sent as a lone <c>\uD83D</c> escape.
/// </summary>
internal struct Utf8Carry
{
    private uint _bytes;

    /// <summary>Number of carried UTF-8 bytes (0 to 3).</summary>
    public int ByteCount { get; private set; }

    /// <summary>A carried high surrogate, or 0.</summary>
    public char HighSurrogate { get; set; }

    public readonly bool IsEmpty => ByteCount == 0 && HighSurrogate == 0;

    public readonly void CopyBytesTo(Span<byte> destination)
    {
        for (var i = 0; i < ByteCount; i++)
        {
            destination[i] = (byte)(_bytes >> (8 * i));
        }
    }

    public void SetBytes(ReadOnlySpan<byte> bytes)
    {
        _bytes = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            _bytes |= (uint)bytes[i] << (8 * i);
        }

        ByteCount = bytes.Length;
    }

    public void Clear()
    {
        _bytes = 0;
        ByteCount = 0;
        HighSurrogate = (char)0;
    }
}

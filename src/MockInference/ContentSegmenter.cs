using System.Buffers;
using System.Text;

namespace MockInference;

/// <summary>
/// Turns one choice's tokens into event contents according to a <see cref="TokenBoundaryMode"/>.
/// Each call writes at most one JSON string literal; false means nothing is ready to send yet.
/// </summary>
internal sealed class ContentSegmenter(TokenBoundaryMode mode)
{
    private readonly byte[] _held = new byte[4];
    private int _heldCount;
    private byte[] _bytes = new byte[64];
    private char[] _chars = new char[64];

    // Surrogates mode: the low half of a pair whose high half ended the previous event.
    private char? _pendingLow;

    /// <summary>Adds one token's bytes; writes the event content literal when there is one to send.</summary>
    public bool Append(ReadOnlySpan<byte> piece, IBufferWriter<byte> literal)
    {
        if (mode == TokenBoundaryMode.RawBytes)
        {
            JsonStringLiteral.WriteUtf8(piece, literal);
            return true;
        }

        var length = _heldCount + piece.Length;
        if (_bytes.Length < length)
        {
            _bytes = new byte[Math.Max(length, _bytes.Length * 2)];
        }

        _held.AsSpan(0, _heldCount).CopyTo(_bytes);
        piece.CopyTo(_bytes.AsSpan(_heldCount));
        var complete = CompleteLength(_bytes.AsSpan(0, length));
        _heldCount = length - complete;
        _bytes.AsSpan(complete, _heldCount).CopyTo(_held);

        return mode == TokenBoundaryMode.Hold
            ? WriteHold(_bytes.AsSpan(0, complete), literal)
            : WriteSurrogates(_bytes.AsSpan(0, complete), literal, final: false);
    }

    /// <summary>At the end of the choice: writes whatever is still held, if anything.</summary>
    public bool Flush(IBufferWriter<byte> literal)
    {
        if (mode == TokenBoundaryMode.RawBytes)
        {
            return false;
        }

        // Only a reply cut by the token limit can end inside a character. A real server stops at the token
        // boundary and its detokenizer never completes the held bytes, so they are dropped: the client gets the
        // last whole character, never a U+FFFD the model did not produce. (Raw-bytes mode sent the partial
        // bytes as they came.) Surrogates mode may still owe the low half of the last whole character.
        _heldCount = 0;
        return mode == TokenBoundaryMode.Surrogates && WriteSurrogates([], literal, final: true);
    }

    private static bool WriteHold(ReadOnlySpan<byte> complete, IBufferWriter<byte> literal)
    {
        if (complete.IsEmpty)
        {
            return false;
        }

        JsonStringLiteral.WriteUtf8(complete, literal);
        return true;
    }

    private bool WriteSurrogates(ReadOnlySpan<byte> complete, IBufferWriter<byte> literal, bool final)
    {
        var needed = Encoding.UTF8.GetMaxCharCount(complete.Length) + 1;
        if (_chars.Length < needed)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }

        var count = 0;
        if (_pendingLow is char low)
        {
            _chars[count++] = low;
        }

        var decoded = Encoding.UTF8.GetChars(complete, _chars.AsSpan(count));
        if (decoded == 0 && !final)
        {
            // Only the pending low half: keep it so it travels with the next character.
            return false;
        }

        count += decoded;
        _pendingLow = null;

        // Split a trailing surrogate pair across this event and the next, as a UTF-16 server slicing its
        // string by code units would.
        if (!final && count >= 2 && char.IsSurrogatePair(_chars[count - 2], _chars[count - 1]))
        {
            _pendingLow = _chars[count - 1];
            count--;
        }

        if (count == 0)
        {
            return false;
        }

        JsonStringLiteral.WriteUtf16Escaped(_chars.AsSpan(0, count), literal);
        return true;
    }

    /// <summary>The length of the longest prefix that does not end inside a UTF-8 sequence.</summary>
    internal static int CompleteLength(ReadOnlySpan<byte> utf8)
    {
        for (var back = 1; back <= 4 && back <= utf8.Length; back++)
        {
            var b = utf8[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue; // continuation byte: keep looking for the lead byte
            }

            var sequenceLength = b switch
            {
                < 0x80 => 1,
                >= 0xF0 => 4,
                >= 0xE0 => 3,
                >= 0xC0 => 2,
                _ => 1,
            };
            return sequenceLength > back ? utf8.Length - back : utf8.Length;
        }

        return utf8.Length;
    }
}

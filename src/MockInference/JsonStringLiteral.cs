using System.Buffers;

namespace MockInference;

/// <summary>
/// Writes JSON string literals by hand. <see cref="System.Text.Json.Utf8JsonWriter"/> refuses invalid UTF-8
/// and lone surrogates, and producing exactly those is the point of two token-boundary modes.
/// </summary>
internal static class JsonStringLiteral
{
    private static ReadOnlySpan<byte> Hex => "0123456789abcdef"u8;

    /// <summary>
    /// Writes bytes as a JSON string, escaping only quote, backslash and control characters (RFC 8259 §7).
    /// Everything else, including invalid UTF-8, is copied as is.
    /// </summary>
    public static void WriteUtf8(ReadOnlySpan<byte> utf8, IBufferWriter<byte> output)
    {
        // Worst case every byte becomes \u00XX.
        var span = output.GetSpan((utf8.Length * 6) + 2);
        var n = 0;
        span[n++] = (byte)'"';
        foreach (var b in utf8)
        {
            if (b >= 0x20 && b != '"' && b != '\\')
            {
                span[n++] = b;
            }
            else
            {
                n += WriteEscape(b, span[n..]);
            }
        }

        span[n++] = (byte)'"';
        output.Advance(n);
    }

    /// <summary>
    /// Writes UTF-16 text as an ASCII-only JSON string: every non-ASCII code unit becomes \uXXXX, the way
    /// Python's json.dumps writes it. Lone surrogates are written as they are.
    /// </summary>
    public static void WriteUtf16Escaped(ReadOnlySpan<char> chars, IBufferWriter<byte> output)
    {
        var span = output.GetSpan((chars.Length * 6) + 2);
        var n = 0;
        span[n++] = (byte)'"';
        foreach (var c in chars)
        {
            if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\')
            {
                span[n++] = (byte)c;
            }
            else if (c < 0x80)
            {
                n += WriteEscape((byte)c, span[n..]);
            }
            else
            {
                n += WriteUnicodeEscape(c, span[n..]);
            }
        }

        span[n++] = (byte)'"';
        output.Advance(n);
    }

    private static int WriteEscape(byte b, Span<byte> span)
    {
        byte? shortForm = b switch
        {
            (byte)'"' => (byte)'"',
            (byte)'\\' => (byte)'\\',
            (byte)'\n' => (byte)'n',
            (byte)'\r' => (byte)'r',
            (byte)'\t' => (byte)'t',
            (byte)'\b' => (byte)'b',
            (byte)'\f' => (byte)'f',
            _ => null,
        };
        if (shortForm is byte s)
        {
            span[0] = (byte)'\\';
            span[1] = s;
            return 2;
        }

        return WriteUnicodeEscape((char)b, span);
    }

    private static int WriteUnicodeEscape(char c, Span<byte> span)
    {
        span[0] = (byte)'\\';
        span[1] = (byte)'u';
        span[2] = Hex[(c >> 12) & 0xF];
        span[3] = Hex[(c >> 8) & 0xF];
        span[4] = Hex[(c >> 4) & 0xF];
        span[5] = Hex[c & 0xF];
        return 6;
    }
}

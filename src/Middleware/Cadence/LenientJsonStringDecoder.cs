using System.Buffers;
using System.Text;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Decodes the raw content of a JSON string (between the quotes, escapes intact) to UTF-8, leniently: a
/// character split across events, as raw bytes (some llama.cpp builds cut tokens inside a UTF-8 sequence) or as
/// a surrogate pair sent as <c>\ud83d</c> then <c>\ude00</c>, is carried to the next event instead of becoming
/// U+FFFD. <see cref="System.Text.Json.Utf8JsonReader.GetString"/> would throw on both, hence this decoder.
/// </summary>
internal static class LenientJsonStringDecoder
{
    private static readonly SearchValues<byte> s_special = SearchValues.Create(CreateSpecialBytes());

    private static ReadOnlySpan<byte> Replacement => [0xEF, 0xBF, 0xBD];

    /// <summary>
    /// Appends the decoded text of <paramref name="raw"/> to <paramref name="output"/>, completing
    /// <paramref name="carry"/> first and leaving an incomplete trailing character in it.
    /// </summary>
    /// <returns>
    /// True when <paramref name="raw"/> is by itself a faithful encoding of its text (no carry consumed or left,
    /// nothing replaced), so the upstream event may be forwarded verbatim.
    /// </returns>
    public static bool Decode(ReadOnlySpan<byte> raw, ref Utf8Carry carry, PooledByteBuffer output)
    {
        var clean = true;
        var i = 0;
        if (carry.ByteCount > 0)
        {
            clean = false;
            Span<byte> sequence = stackalloc byte[4];
            carry.CopyBytesTo(sequence);
            var n = carry.ByteCount;
            while (n < 4 && i < raw.Length && (raw[i] & 0xC0) == 0x80)
            {
                sequence[n++] = raw[i++];
                if (Rune.DecodeFromUtf8(sequence[..n], out _, out _) != OperationStatus.NeedMoreData)
                {
                    break;
                }
            }

            var status = Rune.DecodeFromUtf8(sequence[..n], out _, out var consumed);
            if (status == OperationStatus.Done && consumed == n)
            {
                output.Append(sequence[..n]);
                carry.Clear();
            }
            else if (status == OperationStatus.NeedMoreData && i == raw.Length)
            {
                carry.SetBytes(sequence[..n]);
                return false;
            }
            else
            {
                // The upstream really sent an invalid sequence: the client sees U+FFFD, as any decoder would show.
                output.Append(Replacement);
                carry.Clear();
            }
        }

        if (carry.HighSurrogate != 0)
        {
            clean = false;
            if (i == raw.Length)
            {
                return false;
            }

            var high = carry.HighSurrogate;
            carry.Clear();
            if (TryReadUnicodeEscape(raw[i..], out var low) && char.IsLowSurrogate(low))
            {
                AppendRune(output, new Rune(high, low));
                i += 6;
            }
            else
            {
                output.Append(Replacement);
            }
        }

        while (i < raw.Length)
        {
            var run = raw[i..].IndexOfAny(s_special);
            if (run < 0)
            {
                output.Append(raw[i..]);
                break;
            }

            output.Append(raw.Slice(i, run));
            i += run;
            if (raw[i] == (byte)'\\')
            {
                if (i + 1 >= raw.Length)
                {
                    // Not valid JSON (the reader would have refused it); keep the byte rather than lose it.
                    output.Append(raw[i..]);
                    break;
                }

                var escape = raw[i + 1];
                if (escape == (byte)'u')
                {
                    if (!TryReadUnicodeEscape(raw[i..], out var unit))
                    {
                        output.Append(Replacement);
                        clean = false;
                        i += 2;
                        continue;
                    }

                    i += 6;
                    if (char.IsHighSurrogate(unit))
                    {
                        if (i == raw.Length)
                        {
                            carry.HighSurrogate = unit;
                            return false;
                        }

                        if (TryReadUnicodeEscape(raw[i..], out var low) && char.IsLowSurrogate(low))
                        {
                            AppendRune(output, new Rune(unit, low));
                            i += 6;
                        }
                        else
                        {
                            output.Append(Replacement);
                            clean = false;
                        }
                    }
                    else if (char.IsLowSurrogate(unit))
                    {
                        output.Append(Replacement);
                        clean = false;
                    }
                    else
                    {
                        AppendRune(output, new Rune(unit));
                    }

                    continue;
                }

                output.Append(escape switch
                {
                    (byte)'n' => (byte)'\n',
                    (byte)'r' => (byte)'\r',
                    (byte)'t' => (byte)'\t',
                    (byte)'b' => (byte)'\b',
                    (byte)'f' => (byte)'\f',
                    _ => escape, // '"', '\\', '/'
                });
                i += 2;
                continue;
            }

            var result = Rune.DecodeFromUtf8(raw[i..], out _, out var length);
            if (result == OperationStatus.Done)
            {
                output.Append(raw.Slice(i, length));
            }
            else if (result == OperationStatus.NeedMoreData)
            {
                // The character continues in the next event: hold its first bytes.
                carry.SetBytes(raw[i..]);
                return false;
            }
            else
            {
                output.Append(Replacement);
                clean = false;
            }

            i += length;
        }

        return clean;
    }

    private static bool TryReadUnicodeEscape(ReadOnlySpan<byte> span, out char unit)
    {
        unit = default;
        if (span.Length < 6 || span[0] != (byte)'\\' || span[1] != (byte)'u')
        {
            return false;
        }

        var value = 0;
        for (var k = 2; k < 6; k++)
        {
            var digit = HexValue(span[k]);
            if (digit < 0)
            {
                return false;
            }

            value = (value << 4) | digit;
        }

        unit = (char)value;
        return true;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => -1,
    };

    private static void AppendRune(PooledByteBuffer output, Rune rune)
    {
        Span<byte> utf8 = stackalloc byte[4];
        var written = rune.EncodeToUtf8(utf8);
        output.Append(utf8[..written]);
    }

    private static byte[] CreateSpecialBytes()
    {
        var bytes = new byte[129];
        bytes[0] = (byte)'\\';
        for (var b = 0; b < 128; b++)
        {
            bytes[b + 1] = (byte)(0x80 + b);
        }

        return bytes;
    }
}

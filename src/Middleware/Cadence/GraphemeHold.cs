using System.Buffers;
using System.Globalization;
using System.Text;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Decides how much of the end of pending text to hold back when a flush is due, so that a grapheme cluster
/// (UAX #29, what a browser draws as one character) that the next token will probably extend is not shown
/// half-drawn: a family emoji as three people, a flag as two letters, <c>e</c> without its accent.
/// </summary>
/// <remarks>
/// UAX #29 lets almost anything be extended (GB9: "Do not break before extending characters or ZWJ"), so holding
/// every last cluster would delay all text by a token. The rules look at the last code point only:
/// <list type="bullet">
/// <item><see cref="GraphemeHoldKind.Likely"/>: the cluster is certainly or usually continued: U+200D ZERO WIDTH
/// JOINER (GB11), an odd run of regional indicators (GB12/13: a flag's second letter is missing), an emoji or emoji
/// modifier, a variation selector or tag character (a selector, modifier, ZWJ or tag usually follows), a Hangul
/// leading or vowel jamo (GB6/7), an Indic conjunct linker (GB9c), or CR (GB3: CR LF is one cluster). Also a
/// letter or mark whose script attaches vowel signs, viramas and tone marks to most consonants (Devanagari to
/// Malayalam, Sinhala, Thai, Lao, Tibetan, Myanmar, Khmer: <c>त</c> then <c>े</c>, <c>ด</c> then <c>ี</c>), and, in a
/// choice whose text already had a combining diacritical mark (U+0300..U+036F: decomposed text, <c>Cafe</c> +
/// U+0301, decomposed Vietnamese), a Latin, Greek or Cyrillic letter or mark. Text without these clusters (Latin
/// NFC text above all) never waits for this rule.</item>
/// <item><see cref="GraphemeHoldKind.Possible"/>: any other letter or mark, which a combining mark
/// (U+0301 after <c>e</c>) may extend. Nothing in the text says so, so this is held only when the upstream is
/// already faster than the cadence (the caller's <c>fast</c>): the next token is then due before the next flush
/// anyway.</item>
/// </list>
/// The held tail is the whole last cluster, found with the framework's UAX #29 segmentation
/// (<see cref="StringInfo.GetNextTextElementLength(ReadOnlySpan{char})"/>). The caller bounds every hold in time.
/// </remarks>
internal static class GraphemeHold
{
    private const int ZeroWidthJoiner = 0x200D;

    // The window of text segmented to find the last cluster: a longer cluster is held from inside the window.
    private const int WindowBytes = 96;

    /// <summary>
    /// Where the held-back tail of <paramref name="text"/> starts (<c>text.Length</c> when nothing should be held),
    /// and why it is held.
    /// </summary>
    public static int HoldBackStart(ReadOnlySpan<byte> text, bool fast, out GraphemeHoldKind kind)
        => HoldBackStart(text, fast, decomposed: false, out kind);

    /// <summary>
    /// As above, for a choice whose text had a combining diacritical mark (<paramref name="decomposed"/>, see
    /// <see cref="HasCombiningDiacritic"/>): its final Latin, Greek or Cyrillic letter or mark is held as well.
    /// </summary>
    public static int HoldBackStart(ReadOnlySpan<byte> text, bool fast, bool decomposed, out GraphemeHoldKind kind)
    {
        kind = GraphemeHoldKind.None;
        if (text.IsEmpty)
        {
            return 0;
        }

        var lastByte = text[^1];
        if (lastByte < 0x80)
        {
            // ASCII (the hot path): only CR (of CR LF) is continued by itself; a letter or digit starts a new
            // cluster, so when it may take a combining mark it is the held tail on its own.
            if (lastByte == (byte)'\r')
            {
                kind = GraphemeHoldKind.Likely;
                return text.Length - 1;
            }

            if (char.IsAsciiLetter((char)lastByte) && (fast || decomposed))
            {
                kind = decomposed ? GraphemeHoldKind.Likely : GraphemeHoldKind.Possible;
                return text.Length - 1;
            }

            return text.Length;
        }

        if (Rune.DecodeLastFromUtf8(text, out var last, out var lastLength) != OperationStatus.Done)
        {
            return text.Length;
        }

        if (IsRegionalIndicator(last.Value))
        {
            // An odd run of regional indicators ends with half a flag; an even one is complete.
            if (RegionalIndicatorRun(text) % 2 == 1)
            {
                kind = GraphemeHoldKind.Likely;
                return text.Length - lastLength;
            }

            return text.Length;
        }

        kind = Classify(last, fast, decomposed);
        return kind == GraphemeHoldKind.None ? text.Length : LastClusterStart(text);
    }

    /// <summary>
    /// Whether <paramref name="text"/> (UTF-8) holds a combining diacritical mark (U+0300..U+036F): text that
    /// writes its accents as marks after the letter. One vectorised search for the marks' lead bytes.
    /// </summary>
    public static bool HasCombiningDiacritic(ReadOnlySpan<byte> text)
    {
        // U+0300..U+033F are CC 80..CC BF, U+0340..U+036F are CD 80..CD AF (CD B0.. is Greek); CC and CD are
        // never continuation bytes.
        var at = text.IndexOfAny((byte)0xCC, (byte)0xCD);
        while (at >= 0 && at + 1 < text.Length)
        {
            var next = text[at + 1];
            if (text[at] == 0xCC ? next is >= 0x80 and <= 0xBF : next is >= 0x80 and <= 0xAF)
            {
                return true;
            }

            text = text[(at + 1)..];
            at = text.IndexOfAny((byte)0xCC, (byte)0xCD);
        }

        return false;
    }

    private static GraphemeHoldKind Classify(Rune last, bool fast, bool decomposed)
    {
        var value = last.Value;
        if (value == ZeroWidthJoiner
            || value is >= 0xFE00 and <= 0xFE0F          // variation selectors (VS16 makes an emoji presentation)
            || value is >= 0x1F3FB and <= 0x1F3FF        // emoji modifiers (skin tones)
            || value is >= 0xE0020 and <= 0xE007E        // tag characters (subdivision flags)
            || IsEmoji(value)
            || value is >= 0x1100 and <= 0x11A7 or >= 0xA960 and <= 0xA97C or >= 0xD7B0 and <= 0xD7C6 // Hangul L, V jamo
            || IsConjunctLinker(value))
        {
            return GraphemeHoldKind.Likely;
        }

        var attaching = IsMarkAttachingScript(value) || (decomposed && IsDecomposableScript(value));
        if (fast || attaching)
        {
            // Letters (Lu..Lo) and marks (Mn, Mc, Me): the categories up to EnclosingMark. (Digits take a combining
            // mark only in keycaps, after a variation selector, which is held above.)
            if (Rune.GetUnicodeCategory(last) <= UnicodeCategory.EnclosingMark)
            {
                return attaching ? GraphemeHoldKind.Likely : GraphemeHoldKind.Possible;
            }
        }

        return GraphemeHoldKind.None;
    }

    // Scripts whose consonants mostly take a vowel sign, virama or tone mark after them: Devanagari, Bengali,
    // Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada, Malayalam, Sinhala, Thai, Lao, Tibetan, Myanmar (U+0900..
    // U+109F), Khmer, Devanagari Extended, Myanmar Extended-B and -A.
    private static bool IsMarkAttachingScript(int value)
        => value is >= 0x0900 and <= 0x109F or >= 0x1780 and <= 0x17FF or >= 0xA8E0 and <= 0xA8FF or >= 0xA9E0 and <= 0xA9FF or >= 0xAA60 and <= 0xAA7F;

    // What decomposed text puts combining diacritical marks on: Latin, IPA, the marks themselves, Greek, Cyrillic
    // (U+0080..U+052F), Latin Extended Additional and Greek Extended.
    private static bool IsDecomposableScript(int value) => value is < 0x0530 or >= 0x1E00 and <= 0x1FFF;

    /// <summary>The start of the last extended grapheme cluster, by UAX #29 over a window of the tail.</summary>
    private static int LastClusterStart(ReadOnlySpan<byte> text)
    {
        var windowStart = Math.Max(0, text.Length - WindowBytes);
        while (windowStart > 0 && (text[windowStart] & 0xC0) == 0x80)
        {
            windowStart--;
        }

        var window = text[windowStart..];
        Span<char> chars = stackalloc char[WindowBytes + 4];
        if (Encoding.UTF8.GetCharCount(window) > chars.Length)
        {
            return text.Length;
        }

        var count = Encoding.UTF8.GetChars(window, chars);
        chars = chars[..count];
        var start = 0;
        while (true)
        {
            var length = StringInfo.GetNextTextElementLength(chars[start..]);
            if (start + length >= chars.Length)
            {
                break;
            }

            start += length;
        }

        return windowStart + Encoding.UTF8.GetByteCount(chars[..start]);
    }

    private static int RegionalIndicatorRun(ReadOnlySpan<byte> text)
    {
        var count = 0;
        while (!text.IsEmpty && Rune.DecodeLastFromUtf8(text, out var rune, out var length) == OperationStatus.Done && IsRegionalIndicator(rune.Value))
        {
            count++;
            text = text[..^length];
        }

        return count;
    }

    // Extended_Pictographic, approximately: the emoji blocks and the older symbol blocks emoji come from.
    private static bool IsEmoji(int value)
        => value is >= 0x1F000 and <= 0x1FAFF or >= 0x2600 and <= 0x27BF or >= 0x2300 and <= 0x23FF or >= 0x2B00 and <= 0x2BFF
            or 0x00A9 or 0x00AE or 0x203C or 0x2049 or 0x2122 or 0x2139 or >= 0x2194 and <= 0x21AA or 0x3030 or 0x303D or 0x3297 or 0x3299;

    // Indic_Conjunct_Break=Linker (GB9c): the viramas that join consonants into one conjunct.
    private static bool IsConjunctLinker(int value) => value is 0x094D or 0x09CD or 0x0ACD or 0x0B4D or 0x0C4D or 0x0D4D;

    private static bool IsRegionalIndicator(int value) => value is >= 0x1F1E6 and <= 0x1F1FF;
}

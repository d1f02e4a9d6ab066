using System.Buffers;
using System.Globalization;
using System.Text;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Decides how much of the end of pending text to hold back when a flush is due, so that a grapheme cluster
/// the next token will probably extend is not shown half-drawn (a family emoji as three people, a flag as two
/// letters).
/// </summary>
/// <remarks>
/// Cheap rules on the last code point only, not full UAX #29 (any letter may be followed by a combining mark,
/// and holding every letter would delay all text): hold the trailing cluster when the text ends in
/// <list type="bullet">
/// <item>U+200D ZERO WIDTH JOINER: a ZWJ sequence is certainly being continued;</item>
/// <item>an odd run of regional indicators: the second half of a flag pair is missing;</item>
/// <item>an emoji (U+1F000..U+1FAFF, U+2600..U+27BF), variation selector U+FE0F, skin-tone modifier
/// U+1F3FB..U+1F3FF or tag character U+E0020..U+E007E: a selector, modifier, ZWJ or tag may follow.</item>
/// </list>
/// The caller bounds the hold to one flush interval, so a false guess costs at most one interval.
/// </remarks>
internal static class GraphemeHold
{
    private const int ZeroWidthJoiner = 0x200D;
    private const int MaxRunesInspected = 32;

    /// <summary>Returns where the held-back tail starts: <c>text.Length</c> when nothing should be held.</summary>
    public static int HoldBackStart(ReadOnlySpan<byte> text)
    {
        if (text.IsEmpty || text[^1] < 0x80)
        {
            return text.Length; // ASCII never continues a cluster this rule cares about: the hot path ends here.
        }

        if (Rune.DecodeLastFromUtf8(text, out var last, out var lastLength) != OperationStatus.Done || !MayBeExtended(text, last))
        {
            return text.Length;
        }

        if (IsRegionalIndicator(last.Value))
        {
            return text.Length - lastLength;
        }

        // Walk back to the start of the cluster: over extenders to their base, and over "base ZWJ" links.
        var position = text.Length;
        var rune = last;
        var length = lastLength;
        for (var inspected = 0; inspected < MaxRunesInspected; inspected++)
        {
            position -= length;
            if (position == 0)
            {
                return 0;
            }

            if (Rune.DecodeLastFromUtf8(text[..position], out var previous, out var previousLength) != OperationStatus.Done)
            {
                return position;
            }

            if (IsExtender(rune) || previous.Value == ZeroWidthJoiner)
            {
                rune = previous;
                length = previousLength;
                continue;
            }

            return position;
        }

        return position;
    }

    private static bool MayBeExtended(ReadOnlySpan<byte> text, Rune last)
    {
        var value = last.Value;
        if (value == ZeroWidthJoiner || value == 0xFE0F || IsEmoji(value) || value is >= 0x1F3FB and <= 0x1F3FF || value is >= 0xE0020 and <= 0xE007E)
        {
            return !IsRegionalIndicator(value);
        }

        if (!IsRegionalIndicator(value))
        {
            return false;
        }

        // Count the run of regional indicators: an odd count means the flag's second letter is still to come.
        var count = 0;
        while (!text.IsEmpty && Rune.DecodeLastFromUtf8(text, out var rune, out var length) == OperationStatus.Done && IsRegionalIndicator(rune.Value))
        {
            count++;
            text = text[..^length];
        }

        return count % 2 == 1;
    }

    private static bool IsExtender(Rune rune)
    {
        var value = rune.Value;
        if (value == ZeroWidthJoiner || value is >= 0xFE00 and <= 0xFE0F || value is >= 0x1F3FB and <= 0x1F3FF || value is >= 0xE0020 and <= 0xE007F)
        {
            return true;
        }

        var category = Rune.GetUnicodeCategory(rune);
        return category is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.SpacingCombiningMark;
    }

    private static bool IsEmoji(int value) => value is >= 0x1F000 and <= 0x1FAFF or >= 0x2600 and <= 0x27BF;

    private static bool IsRegionalIndicator(int value) => value is >= 0x1F1E6 and <= 0x1F1FF;
}

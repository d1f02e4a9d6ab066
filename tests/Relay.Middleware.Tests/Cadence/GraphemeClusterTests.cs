using System.Globalization;
using System.Text;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// Judged by UAX #29 over the whole text (<see cref="StringInfo"/>, as browsers'
/// <c>Intl.Segmenter</c> does), the default cadence never splits a grapheme cluster across events, whether the
/// clusters come built over several tokens (every code point a token; raw partial UTF-8; split surrogate escapes)
/// and at any pace, and text without such clusters is not held.
/// </summary>
public sealed class GraphemeClusterTests
{
    public static readonly string[] Texts =
    [
        "A family emoji 👩‍👩‍👧‍👦 is one grapheme.",
        "Pride 🏳️‍🌈 and flags 🇯🇵 🇫🇷🇧🇷 are sequences too.",
        "Faces 😀🙃🤖 and a thumbs up 👍🏽 with a skin tone.",
        "Here: Cafe\u0301 and nai\u0308ve use combining marks.",
        "Hangul jamo \u1112\u1161\u11AB\u1100\u116E\u11A8 and 한국어 too.",
        "Lines end\r\nwith CR LF.",
        "Hindi क्षत्रिय and Tiếng Việt.",
    ];

    public static TheoryData<int, string, int> Cases()
    {
        var data = new TheoryData<int, string, int>();
        for (var text = 0; text < Texts.Length; text++)
        {
            foreach (var gap in new[] { 0, 1, 20, 50, 250 })
            {
                foreach (var style in new[] { "whole", "raw-bytes", "surrogates" })
                {
                    data.Add(text, style, gap);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ClustersBuiltOverSeveralTokens_NeverSplitAcrossEvents(int text, string style, int gapMs)
    {
        var events = Relay(Texts[text], style, gapMs, s_default);
        var splits = SplitClusters(events);

        // A combining mark in a later token than its letter, from an upstream slower than the cadence: nothing in
        // "Cafe" says an accent follows, and holding every final letter would delay all text by a token.
        var unavoidable = gapMs >= 5 ? splits.Where(static s => IsMarkAfterLetter(s)).ToList() : [];
        Assert.True(splits.Count == unavoidable.Count, $"split clusters: {string.Join(", ", splits.Except(unavoidable).Select(Describe))}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public void Control_EveryTokenAsItComes_SplitsClusters(int gapMs)
    {
        // chunk_size 1 holds nothing: the same tokens split clusters, so the check above can see a split.
        var events = Relay(Texts[0] + Texts[1], "whole", gapMs, new StreamPipelineSettings { MaxTokensPerFlush = 1 });
        Assert.Contains(SplitClusters(events), static s => !IsMarkAfterLetter(s));
    }

    [Theory]
    [InlineData(20)]
    [InlineData(50)]
    public void PlainText_SlowerThanTheCadence_EveryTokenWrittenOnArrival(int gapMs)
    {
        // Latin, CJK, Arabic, numbers and punctuation: no cluster the text says goes on, so nothing waits.
        var tokens = Tokenize("The quick brown fox, 人工智能正在改变 مرحبا 3.14159 ∀x ∈ ℝ 𝔘𝔫𝔦 end.");
        using var driver = new PipelineDriver(s_default);
        foreach (var token in tokens)
        {
            var before = driver.Output.Length;
            driver.Process(ChatChunks.Content(token));
            Assert.True(driver.Output.Length > before, $"token {token} was held");
            driver.Advance(TimeSpan.FromMilliseconds(gapMs));
        }
    }

    [Fact]
    public void HeldEmoji_GoesOutWithTheEnvelopeOfTheTokenItCameWith()
    {
        // Each emoji waits one token for a modifier or ZWJ; its event's mock_emitted_us is its own token's, so a
        // run of emoji is not measured (or stamped) from the first of them.
        using var driver = new PipelineDriver(s_default);
        var tokens = new[] { "go", " \U0001F389", "\U0001F525", "\u2728", " end" };
        for (var i = 0; i < tokens.Length; i++)
        {
            driver.Process(ChatChunks.Event($"{{\"id\":\"c\",\"mock_emitted_us\":{i},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{tokens[i]}\"}},\"finish_reason\":null}}]}}"));
            driver.Advance(TimeSpan.FromMilliseconds(20));
        }

        var events = driver.ClientEvents().Select(static e => (ClientContent.ContentOf(e), System.Text.Json.JsonDocument.Parse(e).RootElement.GetProperty("mock_emitted_us").GetInt32()));
        Assert.Equal([("go", 0), (" ", 1), ("\U0001F389", 1), ("\U0001F525", 2), ("\u2728 end", 3)], events);
    }

    [Fact]
    public void LoneRegionalIndicator_IsHeld_PairIsNot()
    {
        Assert.Equal(6, GraphemeHold.HoldBackStart(Encoding.UTF8.GetBytes("flags \U0001F1EF"), fast: false, out var kind));
        Assert.Equal(GraphemeHoldKind.Likely, kind);
        var pair = Encoding.UTF8.GetBytes("flags \U0001F1EF\U0001F1F5");
        Assert.Equal(pair.Length, GraphemeHold.HoldBackStart(pair, fast: false, out kind));
        Assert.Equal(GraphemeHoldKind.None, kind);
    }

    private static readonly StreamPipelineSettings s_default = new();

    /// <summary>The text as tokens: ASCII words with their leading space, every other code point a token of its own.</summary>
    internal static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        var word = new StringBuilder();
        foreach (var rune in text.EnumerateRunes())
        {
            if (rune.IsAscii && rune.Value != '\r' && rune.Value != '\n' && !(rune.Value == ' ' && word.Length > 0 && word[^1] != ' '))
            {
                word.Append((char)rune.Value);
                continue;
            }

            if (word.Length > 0)
            {
                tokens.Add(word.ToString());
                word.Clear();
            }

            if (rune.Value == ' ')
            {
                word.Append(' ');
            }
            else
            {
                tokens.Add(rune.ToString());
            }
        }

        if (word.Length > 0)
        {
            tokens.Add(word.ToString());
        }

        return tokens;
    }

    private static List<byte[]> Relay(string text, string style, int gapMs, StreamPipelineSettings settings)
    {
        var raw = new List<byte[]>();
        foreach (var token in Tokenize(text))
        {
            switch (style)
            {
                case "raw-bytes":
                    var utf8 = Encoding.UTF8.GetBytes(token);
                    var cut = utf8.Length > 1 && utf8[0] >= 0x80 ? 1 : utf8.Length;
                    raw.Add(TokenEncoding.RawBytes(utf8.AsSpan(0, cut)));
                    if (cut < utf8.Length)
                    {
                        raw.Add(TokenEncoding.RawBytes(utf8.AsSpan(cut)));
                    }

                    break;
                case "surrogates":
                    foreach (var c in token.Length == 2 && char.IsSurrogatePair(token[0], token[1]) ? [token[..1], token[1..]] : new[] { token })
                    {
                        raw.Add(TokenEncoding.Escaped(c));
                    }

                    break;
                default:
                    raw.Add(TokenEncoding.RawBytes(Encoding.UTF8.GetBytes(token)));
                    break;
            }
        }

        using var driver = new PipelineDriver(settings);
        driver.Process(ChatChunks.Role());
        foreach (var token in raw)
        {
            driver.Process(ChatChunks.RawContent(token));
            driver.Advance(TimeSpan.FromMilliseconds(gapMs));
        }

        driver.Process(ChatChunks.Finish() + ChatChunks.Done);
        var events = driver.ClientEvents();
        Assert.Equal(text, ClientContent.Join(events));
        return events;
    }

    /// <summary>Every event boundary inside the choice's text that is not a UAX #29 cluster boundary: (text, offset).</summary>
    internal static List<(string Text, int At)> SplitClusters(List<byte[]> events)
    {
        var pieces = events.Select(static e => e.AsSpan().SequenceEqual("[DONE]"u8) ? null : ClientContent.ContentOf(e)).Where(static p => !string.IsNullOrEmpty(p)).ToList();
        var whole = string.Concat(pieces);
        var boundaries = StringInfo.ParseCombiningCharacters(whole).ToHashSet();
        var splits = new List<(string, int)>();
        var at = 0;
        foreach (var piece in pieces.SkipLast(1))
        {
            at += piece!.Length;
            if (!boundaries.Contains(at))
            {
                splits.Add((whole, at));
            }
        }

        return splits;
    }

    /// <summary>Whether the split falls between a letter and a combining mark that follows it.</summary>
    internal static bool IsMarkAfterLetter((string Text, int At) split)
    {
        var after = CharUnicodeInfo.GetUnicodeCategory(split.Text, split.At);
        var before = char.IsLowSurrogate(split.Text[split.At - 1]) && split.At >= 2
            ? CharUnicodeInfo.GetUnicodeCategory(split.Text, split.At - 2)
            : CharUnicodeInfo.GetUnicodeCategory(split.Text[split.At - 1]);
        return after is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
            && before <= UnicodeCategory.OtherNumber;
    }

    internal static string Describe((string Text, int At) split)
        => $"\"{split.Text[Math.Max(0, split.At - 6)..split.At]}|{split.Text[split.At..Math.Min(split.Text.Length, split.At + 6)]}\"";
}

using System.Text;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// Seeded random streams, read splits, cadences and token-boundary styles (whole characters; raw partial UTF-8
/// bytes; split surrogate escapes): the client text equals the upstream text, every event is valid UTF-8 without
/// U+FFFD, comments keep their order, and no text waits longer than two flush intervals after it became complete.
/// </summary>
public sealed class CadencePropertyTests
{
    private static readonly string[] s_alphabet =
        ["a", "b", " ", "é", "日本", "\U0001F600", "\U0001F469\u200D\U0001F469\u200D\U0001F467", "\U0001F1EB\U0001F1F7", "e\u0301", "\u2764\uFE0F", "\n", "\""];

    public static TheoryData<int, int> Seeds()
    {
        var data = new TheoryData<int, int>();
        for (var seed = 0; seed < 60; seed++)
        {
            data.Add(seed, seed % 3);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomStream_ClientTextWholeOrderedAndTimely(int seed, int style)
    {
        var random = new Random(seed);
        var text = string.Concat(Enumerable.Range(0, random.Next(1, 60)).Select(_ => s_alphabet[random.Next(s_alphabet.Length)]));
        var settings = new StreamPipelineSettings
        {
            MaxTokensPerFlush = random.Next(1, 10),
            FlushInterval = TimeSpan.FromMilliseconds(random.Next(0, 3) * 20),
            CoalescingEnabled = random.Next(5) > 0,
        };
        var interval = settings.FlushInterval.Ticks;

        // Cut the text into tokens in the chosen style; remember how much text is complete after each token.
        var tokens = new List<(byte[] Raw, int CompleteLength)>();
        if (style == 2)
        {
            for (var at = 0; at < text.Length;)
            {
                var size = Math.Min(random.Next(1, 4), text.Length - at);
                var complete = at + size - (char.IsHighSurrogate(text[at + size - 1]) ? 1 : 0);
                tokens.Add((TokenEncoding.Escaped(text.AsSpan(at, size)), complete));
                at += size;
            }
        }
        else
        {
            var utf8 = Encoding.UTF8.GetBytes(text);
            for (var at = 0; at < utf8.Length;)
            {
                var size = Math.Min(random.Next(1, 6), utf8.Length - at);
                if (style == 0)
                {
                    while (at + size < utf8.Length && (utf8[at + size] & 0xC0) == 0x80)
                    {
                        size++;
                    }
                }

                var end = at + size;
                while (end > 0 && end < utf8.Length && (utf8[end] & 0xC0) == 0x80)
                {
                    end--;
                }

                tokens.Add((TokenEncoding.RawBytes(utf8.AsSpan(at, size)), Encoding.UTF8.GetCharCount(utf8, 0, end)));
                at += size;
            }
        }

        using var driver = new PipelineDriver(settings);
        driver.Process(ChatChunks.Role());
        var arrivals = new List<(long Time, int CompleteLength)>();
        var comments = 0;
        var first = true;
        foreach (var (raw, complete) in tokens)
        {
            var bytes = ChatChunks.RawContent(raw);
            var before = driver.Output.Length;
            var cut = random.Next(bytes.Length + 1);
            driver.Process(bytes.AsSpan(0, cut));
            driver.Process(bytes.AsSpan(cut));
            if (first && complete > 0 && !Held(text[..complete]))
            {
                Assert.True(driver.Output.Length > before, "the first content token was not written by the call that received it");
            }

            first &= complete == 0;
            arrivals.Add((driver.Time.GetTimestamp(), complete));
            if (random.Next(8) == 0)
            {
                driver.Process($": c{comments++}\n\n");
            }

            driver.Advance(TimeSpan.FromMilliseconds(random.Next(0, 30)));
        }

        driver.Process(ChatChunks.Finish() + ChatChunks.Done);
        driver.Complete();

        Assert.Equal(text, ClientContent.Join(driver.ClientEvents()));
        var output = driver.OutputText;
        var positions = Enumerable.Range(0, comments).Select(i => output.IndexOf($": c{i}\n", StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(-1, positions);
        Assert.Equal(positions.Order(), positions);

        // Latency: text complete at time t reaches the client by t + two intervals (the throttle's slot, then one
        // interval of a letter's grapheme hold), unless a cluster the text says goes on (an emoji, a ZWJ, half a
        // flag) is waiting for its next token: a hold is bounded from the latest token.
        var delivered = driver.Writes.Select(w => (w.Time, Length: ClientContent.Join(PipelineDriver.ParseEvents(driver.Output[..w.Length])).Length)).ToList();
        var hold = TimeSpan.FromMilliseconds(500).Ticks;
        foreach (var (time, complete) in arrivals)
        {
            var when = delivered.First(d => d.Length >= complete).Time;
            var latestToken = arrivals.Where(a => a.Time <= when).Max(static a => a.Time);
            var held = complete > 0 && Held(text[..complete]);
            Assert.True(when - time <= 2 * interval || (held && when <= latestToken + hold + interval), $"text up to {complete} waited {(when - time) / TimeSpan.TicksPerMillisecond} ms");
        }
    }

    /// <summary>Whether the text's last cluster is held for its next token (a letter is, once the text had a combining mark).</summary>
    private static bool Held(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        return GraphemeHold.HoldBackStart(utf8, fast: false, GraphemeHold.HasCombiningDiacritic(utf8), out _) < utf8.Length;
    }
}

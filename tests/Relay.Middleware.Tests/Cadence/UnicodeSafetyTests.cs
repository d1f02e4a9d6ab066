using System.Globalization;
using System.Text;
using System.Text.Json;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// Strings of ../shared/testdata/unicode (Unicode emoji-test 13.1 ZWJ sequences, Unicode License v3;
/// rexxars/eventsource-parser multibyte scripts and emoji, MIT; big-list-of-naughty-strings, MIT; Markus Kuhn's
/// UTF-8-demo.txt) as delta.content split at every offset into two events: the client gets them whole.
/// </summary>
public sealed class UnicodeSafetyTests
{
    [TestDataFact]
    public void SplitAtEveryByteOffset_RawBytes_ClientTextWhole()
    {
        foreach (var text in Strings())
        {
            var utf8 = Encoding.UTF8.GetBytes(text);
            for (var k = 1; k < utf8.Length; k++)
            {
                AssertWhole(text, TokenEncoding.RawBytes(utf8.AsSpan(0, k)), TokenEncoding.RawBytes(utf8.AsSpan(k)));
            }
        }
    }

    [TestDataFact]
    public void SplitAtEveryUtf16Offset_SurrogateEscapes_ClientTextWhole()
    {
        foreach (var text in Strings().Where(s => s.Any(char.IsSurrogate)))
        {
            for (var k = 1; k < text.Length; k++)
            {
                AssertWhole(text, TokenEncoding.Escaped(text.AsSpan(0, k)), TokenEncoding.Escaped(text.AsSpan(k)));
            }
        }
    }

    [Fact]
    public void IncompleteCharacterAtEnd_IsDroppedAtComplete()
    {
        // A character never completed is dropped, not U+FFFD (issue 22, defect 1; IncompleteCharacterAtCutTests).
        using var driver = new PipelineDriver(new StreamPipelineSettings());
        driver.Process(ChatChunks.RawContent("ok"u8));
        driver.Process(ChatChunks.RawContent([0xF0, 0x9F, 0x98]));
        driver.Complete();
        var texts = driver.ClientEvents().Select(e => ClientContent.ContentOf(e)).ToList();
        Assert.Equal("ok", string.Concat(texts));
    }

    private static void AssertWhole(string text, byte[] first, byte[] second)
    {
        using var driver = new PipelineDriver(new StreamPipelineSettings());
        driver.Process(ChatChunks.RawContent(first));
        driver.Process(ChatChunks.RawContent(second));
        driver.Complete();
        var joined = ClientContent.Join(driver.ClientEvents(), upstreamHasReplacement: text.Contains('\uFFFD', StringComparison.Ordinal));
        if (joined != text)
        {
            Assert.Fail($"split of {JsonSerializer.Serialize(text)} at {first.Length} bytes gave {JsonSerializer.Serialize(joined)}");
        }
    }

    private static IEnumerable<string> Strings()
    {
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(TestDataPaths.Get("unicode", "eventsource-parser_multibyte.json"))))
        {
            foreach (var name in new[] { "MULTIBYTE_LINES", "MULTIBYTE_EMOJIS" })
            {
                foreach (var s in doc.RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetString()!).ToList())
                {
                    yield return s;
                }
            }
        }

        var blns = JsonSerializer.Deserialize<string[]>(File.ReadAllBytes(TestDataPaths.Get("unicode", "blns_blns.json")))!;
        foreach (var s in blns.Where(s => s.Length > 0))
        {
            yield return s;
        }

        foreach (var line in File.ReadLines(TestDataPaths.Get("unicode", "emoji-test-13.1-headerless.txt")))
        {
            var semicolon = line.IndexOf(';', StringComparison.Ordinal);
            if (semicolon <= 0 || !line.Contains("200D", StringComparison.Ordinal))
            {
                continue;
            }

            yield return string.Concat(line[..semicolon].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(cp => char.ConvertFromUtf32(int.Parse(cp, NumberStyles.HexNumber, CultureInfo.InvariantCulture))));
        }

        foreach (var line in File.ReadLines(TestDataPaths.Get("unicode", "UTF-8-demo.txt")).Where(l => l.Length > 0).Take(400))
        {
            yield return line;
        }
    }
}

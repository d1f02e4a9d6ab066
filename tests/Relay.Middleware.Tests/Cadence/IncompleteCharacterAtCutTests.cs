using System.Text;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// Issue 22, defect 1: the upstream's last token ends inside a multi-byte character (a <c>length</c> cut in
/// MockInference's <c>raw-bytes</c> mode, seeds 11 and 2024: <c>𝔘𝔫𝔦𝔠𝔬</c> then the first bytes of <c>𝔡</c>), then
/// the stream finishes. The character never completed is dropped, as before an upstream error event: the client's
/// text ends at the last whole character, with no U+FFFD, in every cadence mode.
/// </summary>
public sealed class IncompleteCharacterAtCutTests
{
    private const string Whole = "𝔘𝔫𝔦𝔠𝔬";

    public static TheoryData<string, int, int> Cases()
    {
        var data = new TheoryData<string, int, int>();
        foreach (var mode in new[] { "default", "chunk_size 1", "include_usage" })
        {
            foreach (var gapMs in new[] { 0, 20 })
            {
                for (var partial = 1; partial <= 3; partial++)
                {
                    data.Add(mode, gapMs, partial);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LastTokenEndsInsideACharacter_ThenLengthFinish_CharacterDropped(string mode, int gapMs, int partialBytes)
    {
        // Tokens of three bytes, as raw-bytes mode cuts them: every token ends inside a character, the last one
        // inside 𝔡 (F0 9D 94 A1), of which only partialBytes came.
        var utf8 = Encoding.UTF8.GetBytes(Whole + "𝔡")[..(Encoding.UTF8.GetByteCount(Whole) + partialBytes)];
        var tokens = utf8.Chunk(3).Select(static t => ChatChunks.RawContent(t)).ToList();
        var events = Relay(mode, gapMs, tokens, ChatChunks.Finish("length"));

        AssertEndsAtTheLastWholeCharacter(events, mode);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("chunk_size 1")]
    [InlineData("include_usage")]
    public void FinishChunkCarriesTheIncompleteCharacter_CharacterDropped(string mode)
    {
        // The cut's first bytes in the finishing chunk's own content.
        var tokens = new List<byte[]> { ChatChunks.RawContent(Encoding.UTF8.GetBytes(Whole)) };
        var finish = Encoding.UTF8.GetString(ChatChunks.RawContent("\\ud835"u8)).Replace("\"finish_reason\":null", "\"finish_reason\":\"length\"", StringComparison.Ordinal);
        var events = Relay(mode, 20, tokens, finish);

        AssertEndsAtTheLastWholeCharacter(events, mode);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("chunk_size 1")]
    public void AnotherFieldStartsAfterAnIncompleteCharacter_CharacterDropped(string mode)
    {
        // Reasoning cut inside a character, then the content begins: the reasoning ends at its last whole character.
        var reasoning = Encoding.UTF8.GetBytes("思考")[..5];
        var prefix = $"data: {{{ChatChunks.Envelope},\"choices\":[{{\"index\":0,\"delta\":{{\"reasoning_content\":\"";
        byte[] reasoningToken = [.. Encoding.UTF8.GetBytes(prefix), .. reasoning, .. "\"},\"finish_reason\":null}]}\n\n"u8];
        using var driver = new PipelineDriver(Settings(mode));
        driver.Process(reasoningToken);
        driver.Advance(TimeSpan.FromMilliseconds(20));
        driver.Process(ChatChunks.Content("ok") + ChatChunks.Finish() + ChatChunks.Done);

        Assert.DoesNotContain("\\ufffd", driver.OutputText, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\uFFFD', driver.OutputText);
        Assert.Contains("\"reasoning_content\":\"思\"", driver.OutputText, StringComparison.Ordinal);
        Assert.Equal("ok", ClientContent.Join(driver.ClientEvents()));
    }

    private static StreamPipelineSettings Settings(string mode) => mode switch
    {
        "chunk_size 1" => new StreamPipelineSettings { MaxTokensPerFlush = 1 },
        _ => new StreamPipelineSettings(),
    };

    private static List<byte[]> Relay(string mode, int gapMs, List<byte[]> tokens, string finish)
    {
        using var driver = new PipelineDriver(Settings(mode));
        driver.Process(ChatChunks.Role());
        foreach (var token in tokens)
        {
            driver.Process(token);
            driver.Advance(TimeSpan.FromMilliseconds(gapMs));
        }

        driver.Process(finish);
        if (mode == "include_usage")
        {
            driver.Process(ChatChunks.Usage());
        }

        driver.Process(ChatChunks.Done);
        driver.Complete();
        Assert.DoesNotContain("\\ufffd", driver.OutputText, StringComparison.OrdinalIgnoreCase);
        return driver.ClientEvents();
    }

    private static void AssertEndsAtTheLastWholeCharacter(List<byte[]> events, string mode)
    {
        // ClientContent.Join fails on a U+FFFD in any event.
        Assert.Equal(Whole, ClientContent.Join(events));
        Assert.Equal("[DONE]", Encoding.UTF8.GetString(events[^1]));
        Assert.Contains("\"finish_reason\":\"length\"", Encoding.UTF8.GetString(events[mode == "include_usage" ? ^3 : ^2]), StringComparison.Ordinal);
    }
}

using System.Text;

namespace MockInference.Tests;

public sealed class TokenizerTests
{
    private readonly MockTokenizer _tokenizer = new();

    [Theory]
    [InlineData("Hello, world!")]
    [InlineData("東京は日本の首都です。")]
    [InlineData("👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 e\u0301 Tiếng Việt ∀x ∈ ℝ 𝔘𝔫𝔦")]
    public void TokenPieces_ConcatenateToTheTextBytes(string text)
    {
        var bytes = _tokenizer.Encode(text).SelectMany(id => _tokenizer.GetTokenBytes(id).ToArray()).ToArray();

        Assert.Equal(Encoding.UTF8.GetBytes(text), bytes);
    }

    [Theory]
    [InlineData("👩‍👩‍👧‍👦")]
    [InlineData("🇯🇵")]
    [InlineData("𝔘")]
    public void MultiByteCharacter_SpansSeveralTokens(string text)
    {
        var pieces = _tokenizer.Encode(text).Select(id => _tokenizer.GetTokenBytes(id).ToArray()).ToList();

        Assert.True(pieces.Count >= 2, $"{text} is {pieces.Count} token(s)");
        Assert.Contains(pieces, p => !IsWholeUtf8(p));
    }

    [Fact]
    public void GeneratedText_HasAtLeastTheRequestedTokens_AndIsDeterministic()
    {
        var a = ReplyText.Generate(5, 1000, _tokenizer);
        var b = ReplyText.Generate(5, 1000, _tokenizer);

        Assert.Equal(a, b);
        Assert.True(_tokenizer.CountTokens(a) >= 1000);
    }

    [Theory]
    [InlineData(new byte[] { 0x41 }, 1)]
    [InlineData(new byte[] { 0x41, 0xE6 }, 1)]
    [InlineData(new byte[] { 0x41, 0xE6, 0x9D }, 1)]
    [InlineData(new byte[] { 0xE6, 0x9D, 0xB1 }, 3)]
    [InlineData(new byte[] { 0xF0, 0x9F, 0x91 }, 0)]
    [InlineData(new byte[] { 0xF0, 0x9F, 0x91, 0xA9 }, 4)]
    public void CompleteLength_StopsBeforeAnUnfinishedSequence(byte[] bytes, int expected)
    {
        Assert.Equal(expected, ContentSegmenter.CompleteLength(bytes));
    }

    private static bool IsWholeUtf8(byte[] bytes)
    {
        try
        {
            new UTF8Encoding(false, true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }
}

using System.Text;
using System.Text.Json;

namespace MockInference.Tests;

public sealed class TokenBoundaryTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static Dictionary<string, string> Knobs(string boundary) => new()
    {
        ["x-mock-token-boundary"] = boundary,
        ["x-mock-seed"] = "7",
        ["x-mock-max-tokens"] = "300",
    };

    private async Task<string> ReferenceTextAsync()
    {
        using var response = await server.Client.SendAsync(MockApi.Chat(stream: false, knobs: Knobs("hold")));
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    [Fact]
    public async Task Hold_EveryEventIsWholeUtf8_AndSomeEventCarriesSeveralTokens()
    {
        var (response, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: Knobs("hold")));

        foreach (var e in events)
        {
            // Throws on any invalid or partial sequence.
            var text = s_strictUtf8.GetString(e.Data);
            Assert.DoesNotContain('\uFFFD', text);
        }

        Assert.Equal(await ReferenceTextAsync(), MockApi.Content(events));
        var contentEvents = events.Count(e => ContentLiteral.Raw(e.Data) is { Length: > 0 });
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var record = await MockApi.GetRecordAsync(server.Client, id);
        Assert.Equal(300, record.GetProperty("tokens_generated").GetInt32());
        Assert.Equal(300, record.GetProperty("token_emit_us").GetArrayLength());
        Assert.True(contentEvents < 300, "held tokens are sent together with the token that completes the character");
    }

    [Fact]
    public async Task Surrogates_SplitsNonBmpCharactersAcrossEvents_AndJoinsBackExactly()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: Knobs("surrogates")));

        var literals = events.Select(e => ContentLiteral.Raw(e.Data)).OfType<byte[]>().Select(Encoding.ASCII.GetString).ToList();
        Assert.Contains(literals, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"\\ud8[0-3][0-9a-f]$"));
        Assert.Contains(literals, l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\\ud[c-f][0-9a-f]{2}"));

        // Joined, the escapes form valid pairs again.
        var joined = JsonSerializer.Deserialize<string>("\"" + string.Concat(literals) + "\"");
        Assert.Equal(await ReferenceTextAsync(), joined);
    }

    [Fact]
    public async Task RawBytes_SomeEventHasInvalidUtf8_AndTheBytesConcatenateToTheReply()
    {
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: Knobs("raw-bytes")));

        var pieces = events.Select(e => ContentLiteral.Raw(e.Data)).OfType<byte[]>().Select(ContentLiteral.UnescapeToBytes).ToList();
        Assert.Contains(pieces, p => !IsValidUtf8(p));
        var all = pieces.SelectMany(p => p).ToArray();
        Assert.Equal(Encoding.UTF8.GetBytes(await ReferenceTextAsync()), all);
    }

    // Seeds whose reply, cut at 300 tokens, ends inside a 4-byte character (the token limit falls between the
    // tokens of one emoji).
    [Theory]
    [InlineData("hold", 11)]
    [InlineData("hold", 2024)]
    [InlineData("surrogates", 11)]
    [InlineData("surrogates", 2024)]
    public async Task MaxTokensCutInsideACharacter_LastContentIsTheLastWholeCharacter_NoReplacementCharacter(string boundary, int seed)
    {
        var knobs = new Dictionary<string, string>
        {
            ["x-mock-token-boundary"] = boundary,
            ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["x-mock-max-tokens"] = "300",
        };
        var (response, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(includeUsage: true, knobs: knobs));
        var rawBytes = await RawBytesAsync(knobs);
        Assert.False(IsValidUtf8(rawBytes), "the token limit cuts a character (precondition of this case)");

        var literals = events.Select(e => ContentLiteral.Raw(e.Data)).OfType<byte[]>().Select(Encoding.UTF8.GetString).ToList();
        Assert.DoesNotContain(literals, l => l.Contains("\\ufffd", StringComparison.OrdinalIgnoreCase) || l.Contains('\uFFFD'));
        var joined = JsonSerializer.Deserialize<string>("\"" + string.Concat(literals) + "\"")!;
        var wholeCharacters = Encoding.UTF8.GetString(rawBytes, 0, LastCharacterBoundary(rawBytes));
        Assert.Equal(wholeCharacters, joined);

        // The tokens of the cut character were generated (and are billed), as on a real server.
        Assert.Equal("length", events[^3].Json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(300, events[^2].Json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var record = await MockApi.GetRecordAsync(server.Client, response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal(300, record.GetProperty("token_emit_us").GetArrayLength());

        // Not streamed, the content is the same whole characters.
        Assert.Equal(wholeCharacters, await NonStreamedTextAsync(knobs));
    }

    [Theory]
    [InlineData(11)]
    [InlineData(2024)]
    public async Task RawBytes_MaxTokensCutInsideACharacter_SendsThePartialBytes(int seed)
    {
        var knobs = new Dictionary<string, string>
        {
            ["x-mock-seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["x-mock-max-tokens"] = "300",
        };
        var bytes = await RawBytesAsync(knobs);

        Assert.False(IsValidUtf8(bytes), "the last event carries the first bytes of the cut character");
        Assert.True(LastCharacterBoundary(bytes) < bytes.Length);
        Assert.StartsWith(await NonStreamedTextAsync(knobs), Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
    }

    private async Task<byte[]> RawBytesAsync(Dictionary<string, string> knobs)
    {
        var raw = new Dictionary<string, string>(knobs) { ["x-mock-token-boundary"] = "raw-bytes" };
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Chat(knobs: raw));
        return events.Select(e => ContentLiteral.Raw(e.Data)).OfType<byte[]>().SelectMany(ContentLiteral.UnescapeToBytes).ToArray();
    }

    private async Task<string> NonStreamedTextAsync(Dictionary<string, string> knobs)
    {
        using var response = await server.Client.SendAsync(MockApi.Chat(stream: false, knobs: knobs));
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    /// <summary>The length of the longest prefix of whole UTF-8 characters.</summary>
    private static int LastCharacterBoundary(byte[] utf8)
    {
        for (var length = utf8.Length; length > 0; length--)
        {
            if (IsValidUtf8(utf8[..length]))
            {
                return length;
            }
        }

        return 0;
    }

    private static bool IsValidUtf8(byte[] bytes)
    {
        try
        {
            s_strictUtf8.GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }
}

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

using System.Globalization;
using System.Net.ServerSentEvents;
using System.Text;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Issue 22 end to end, through an in-process Relay: a <c>length</c> cut inside a character (defect 1), an
/// unterminated last event on a chat route (defect 2), and combining marks after a flush boundary in scripts that
/// use them (defect 4).
/// </summary>
public sealed class StreamDefectTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    public static TheoryData<int, string> CutCases()
    {
        var data = new TheoryData<int, string>();
        foreach (var seed in new[] { 11, 2024 })
        {
            foreach (var mode in new[] { "default", "chunk_size 1", "include_usage" })
            {
                data.Add(seed, mode);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CutCases))]
    public async Task LengthCutInsideACharacter_RawBytes_NoReplacementCharacter(int seed, string mode)
    {
        object? options = mode switch
        {
            "chunk_size 1" => new { chunk_size = 1 },
            "include_usage" => new { include_usage = true },
            _ => null,
        };
        var events = await ReadAsync(Relay.Url, seed, "raw-bytes", options);
        var text = string.Concat(events.Select(static e => e.Content));

        Assert.True(events[^1].IsDone, events[^1].Data);
        Assert.DoesNotContain('\uFFFD', text);
        Assert.DoesNotContain(events, static e => e.Data.Contains("\\ufffd", StringComparison.OrdinalIgnoreCase));

        // The mock's text minus the incomplete character: what its hold mode sends (it never sends a partial one).
        Assert.Equal(await DirectWholeTextAsync(seed), text);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(2024)]
    public async Task Control_LengthCut_DirectRawBytesStreamEndsInsideACharacter(int seed)
    {
        // The reproduction is valid: the upstream's last content bytes are the start of a character it never finishes.
        using var request = SseRead.ChatRequest(Upstream.Url, headers: Knobs(seed, "raw-bytes"));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsByteArrayAsync();
        var lastContent = Encoding.Latin1.GetString(body).Split("\n\n").Last(static e => e.Contains("\"content\":\"", StringComparison.Ordinal) && !e.Contains("\"content\":\"\"", StringComparison.Ordinal));
        var raw = Encoding.Latin1.GetBytes(lastContent[(lastContent.IndexOf("\"content\":\"", StringComparison.Ordinal) + 11)..]);
        var end = Array.IndexOf(raw, (byte)'"');
        Assert.False(System.Text.Unicode.Utf8.IsValid(raw.AsSpan(0, end)), "the last content token is whole");
    }

    [Fact]
    public async Task UnterminatedLastEvent_ChatRoute_ErrorFollowsTheLastWholeEvent()
    {
        const string body = "retry:1000\ndata:test1\n\nid:test\ndata:test2\n";
        await using var scripted = new ScriptedSseUpstream(body);
        await using var relay = await InProcessRelay.StartAsync(scripted.Url);
        using var request = SseRead.ChatRequest(relay.Url);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var received = await response.Content.ReadAsStringAsync();

        Assert.DoesNotContain("test2", received, StringComparison.Ordinal);
        var data = new List<string>();
        await foreach (var item in SseParser.Create(new MemoryStream(Encoding.UTF8.GetBytes(received))).EnumerateAsync())
        {
            data.Add(item.Data);
        }

        Assert.Equal(2, data.Count);
        Assert.Equal("test1", data[0]);
        Assert.Contains("upstream_truncated", data[1], StringComparison.Ordinal);
    }

    // Hindi, Thai, Bengali, Tamil and decomposed Vietnamese (the paragraph, and Latin decomposed text).
    private const string MarkedParagraph = "नमस्ते, हिन्दी में मात्राएँ और हलंत व्यंजनों से जुड़ते हैं। สวัสดีครับ ภาษาไทยมีสระและวรรณยุกต์ "
        + "বাংলা ভাষায় কার চিহ্ন যুক্ত হয়। தமிழ் மொழியில் உயிர்மெய் எழுத்துக்கள் உள்ளன. "
        + "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 nhie\u0302\u0300u da\u0302\u0301u. Cafe\u0301 au lait, re\u0301sume\u0301.";

    [Theory]
    [InlineData(50)]
    [InlineData(200)]
    public async Task EchoOfMarkedScripts_FastPace_NoEventSplitsACluster(int tokensPerSecond)
    {
        var splits = new List<string>();
        var events = 0;
        foreach (var seed in Enumerable.Range(1, 4))
        {
            var headers = Knobs(seed, "raw-bytes");
            headers["x-mock-reply"] = "echo";
            headers["x-mock-tokens-per-second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture);
            headers.Remove("x-mock-max-tokens");
            using var request = EchoRequest(headers);
            using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var received = await SseRead.ReadAllAsync(response);
            Assert.True(received[^1].IsDone, received[^1].Data);
            var pieces = received.Select(static e => e.Content).Where(static c => c.Length > 0).ToList();
            Assert.Equal(MarkedParagraph, string.Concat(pieces));
            events += pieces.Count;

            // The stream's first combining diacritical mark after a Latin letter cannot be foreseen (the Latin text
            // before it looks like any other): a split there is allowed, any other fails.
            var firstDiacritic = MarkedParagraph.IndexOf('\u0302', StringComparison.Ordinal);
            var at = 0;
            var boundaries = StringInfo.ParseCombiningCharacters(MarkedParagraph).ToHashSet();
            foreach (var piece in pieces.SkipLast(1))
            {
                at += piece.Length;
                if (!boundaries.Contains(at) && at != firstDiacritic)
                {
                    splits.Add($"seed {seed}: \"{MarkedParagraph[Math.Max(0, at - 6)..at]}|{MarkedParagraph[at..Math.Min(MarkedParagraph.Length, at + 6)]}\"");
                }
            }
        }

        Assert.True(events > 8, $"{events} content events");
        Assert.True(splits.Count == 0, string.Join("; ", splits));
    }

    private HttpRequestMessage EchoRequest(Dictionary<string, string> headers)
    {
        var request = SseRead.ChatRequest(Relay.Url, headers: headers);
        request.Content = new StringContent(
            System.Text.Json.JsonSerializer.Serialize(new { model = "mock", stream = true, messages = new[] { new { role = "user", content = MarkedParagraph } } }),
            Encoding.UTF8, "application/json");
        return request;
    }

    private static Dictionary<string, string> Knobs(int seed, string boundary) => new()
    {
        ["x-mock-seed"] = seed.ToString(CultureInfo.InvariantCulture),
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-max-tokens"] = "300",
        ["x-mock-token-boundary"] = boundary,
    };

    private async Task<List<ReceivedEvent>> ReadAsync(string baseUrl, int seed, string boundary, object? streamOptions)
    {
        using var request = SseRead.ChatRequest(baseUrl, streamOptions: streamOptions, headers: Knobs(seed, boundary));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        return await SseRead.ReadAllAsync(response);
    }

    private async Task<string> DirectWholeTextAsync(int seed)
        => string.Concat((await ReadAsync(Upstream.Url, seed, "hold", null)).Select(static e => e.Content));
}

using System.Text;
using System.Text.Json;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// Real captured streams (test data: openai/openai-python and openai/openai-node snapshots, vercel/ai fixtures,
/// anthropics/anthropic-sdk-python; all Apache-2.0 or MIT, see ../shared/testdata/README.md) relayed at random
/// read splits and several cadences: the client must see the same per-choice summary as the upstream sent.
/// </summary>
public sealed class CaptureReplayTests
{
    private static readonly string[] s_chatFolders = ["openai-python", "openai-node", "vercel-ai/chat-completions"];

    public static TheoryData<string> ChatCaptures()
    {
        var data = new TheoryData<string>();
        if (TestDataPaths.Root is null)
        {
            data.Add("(test data missing)");
            return data;
        }

        foreach (var folder in s_chatFolders)
        {
            foreach (var file in Directory.EnumerateFiles(TestDataPaths.Get("llm-sse", folder)).Order(StringComparer.Ordinal))
            {
                if (file.EndsWith(".sse", StringComparison.Ordinal) || file.EndsWith(".chunks.txt", StringComparison.Ordinal))
                {
                    data.Add($"{folder}/{Path.GetFileName(file)}");
                }
            }
        }

        return data;
    }

    public static TheoryData<string> OtherCaptures()
    {
        var data = new TheoryData<string>();
        if (TestDataPaths.Root is null)
        {
            data.Add("(test data missing)");
            return data;
        }

        foreach (var folder in new[] { "anthropic-sdk-python", "vercel-ai/anthropic-messages", "vercel-ai/openai-responses" })
        {
            foreach (var file in Directory.EnumerateFiles(TestDataPaths.Get("llm-sse", folder)).Order(StringComparer.Ordinal))
            {
                data.Add($"{folder}/{Path.GetFileName(file)}");
            }
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(ChatCaptures))]
    public void ChatCapture_AnyCadenceAndReadSplit_SameSummary(string capture)
    {
        var input = LoadAsSse(capture);
        var expected = FindExpected(capture);
        var seed = capture.Length;
        var upstream = ChatStreamSummary.From(PipelineDriver.ParseEvents(input));
        foreach (var tokens in new[] { 1, 4, 8 })
        {
            foreach (var intervalMs in new[] { 0, 20, 100 })
            {
                var settings = new StreamPipelineSettings { MaxTokensPerFlush = tokens, FlushInterval = TimeSpan.FromMilliseconds(intervalMs) };
                using var driver = new PipelineDriver(settings);
                driver.Replay(input, new Random(seed++), maxReadSize: 97, maxPause: TimeSpan.FromMilliseconds(15));
                var summary = ChatStreamSummary.From(driver.ClientEvents());
                summary.AssertMatches(expected, $"{capture} (tokens {tokens}, {intervalMs} ms)");
                summary.AssertSameLogprobs(upstream, $"{capture} (tokens {tokens}, {intervalMs} ms)");
                Assert.Equal(driver.Pipeline.Accounting.UpstreamContentEvents, driver.Pipeline.Accounting.DeliveredContentEvents);
                Assert.True(driver.Pipeline.Accounting.DoneSeen);
                if (tokens == 8 && intervalMs == 100)
                {
                    // Coalescing must actually happen on long streams.
                    Assert.True(driver.Pipeline.Accounting.EventsWritten <= driver.ClientEvents().Count);
                }
            }
        }
    }

    [TestDataTheory]
    [MemberData(nameof(OtherCaptures))]
    public void NonChatCapture_PassThrough_IsByteIdentical(string capture)
    {
        var input = LoadAsSse(capture, appendDone: false);
        for (var seed = 0; seed < 3; seed++)
        {
            using var driver = new PipelineDriver(new StreamPipelineSettings { Kind = StreamKind.PassThrough });
            driver.Replay(input, new Random(seed), maxReadSize: seed == 0 ? 1 : 200, maxPause: TimeSpan.FromMilliseconds(5));
            Assert.Equal(input, driver.Output.ToArray());
        }
    }

    [TestDataFact]
    public void GroqCapture_Coalesced_WritesFewerEvents()
    {
        var input = LoadAsSse("vercel-ai/chat-completions/groq__groq-text.chunks.txt");
        using var driver = new PipelineDriver(new StreamPipelineSettings { MaxTokensPerFlush = 8, FlushInterval = TimeSpan.FromMilliseconds(20) });
        driver.Replay(input, new Random(1), maxReadSize: 4096, maxPause: TimeSpan.Zero);
        var accounting = driver.Pipeline.Accounting;
        Assert.Equal("llama-3.3-70b-versatile", accounting.Model);
        Assert.Equal(45, accounting.PromptTokens);
        Assert.Equal(662, accounting.CompletionTokens);
        Assert.True(accounting.EventsWritten < accounting.UpstreamContentEvents / 4, $"{accounting.EventsWritten} events for {accounting.UpstreamContentEvents} tokens");
    }

    internal static byte[] LoadAsSse(string capture, bool appendDone = true)
    {
        var path = TestDataPaths.Get(["llm-sse", .. capture.Split('/')]);
        if (!path.EndsWith(".chunks.txt", StringComparison.Ordinal))
        {
            return File.ReadAllBytes(path);
        }

        // vercel/ai fixtures: one JSON chunk per line without the "data:" prefix.
        var sse = new StringBuilder();
        foreach (var line in File.ReadAllLines(path))
        {
            if (line.Length > 0)
            {
                sse.Append("data: ").Append(line).Append("\n\n");
            }
        }

        if (appendDone)
        {
            sse.Append("data: [DONE]\n\n");
        }

        return Encoding.UTF8.GetBytes(sse.ToString());
    }

    private static JsonElement FindExpected(string capture)
    {
        var folder = capture[..capture.LastIndexOf('/')];
        var file = capture[(capture.LastIndexOf('/') + 1)..];
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestDataPaths.Get(["llm-sse", .. folder.Split('/'), "EXPECTED_SUMMARY.json"])));
        foreach (var entry in doc.RootElement.EnumerateArray())
        {
            if (entry.GetProperty("file").GetString() == file)
            {
                return entry.Clone();
            }
        }

        throw new InvalidOperationException($"no EXPECTED_SUMMARY entry for {capture}");
    }
}

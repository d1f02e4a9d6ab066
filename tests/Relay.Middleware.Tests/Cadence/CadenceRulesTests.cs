using System.Text;
using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>The cadence rules of the product spec: "every ~20 ms or every 8 tokens, whichever comes first".</summary>
public sealed class CadenceRulesTests
{
    private static readonly StreamPipelineSettings s_default = new();

    [Fact]
    public void Coalescer_EightTokens_OneEventAfterTheFirst()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("first"));
        Assert.Single(driver.ClientEvents());
        for (var i = 0; i < 8; i++)
        {
            driver.Process(ChatChunks.Content($" t{i}"));
        }

        var events = driver.ClientEvents();
        Assert.Equal(2, events.Count);
        Assert.Equal(" t0 t1 t2 t3 t4 t5 t6 t7", ClientContent.ContentOf(events[1]));
        Assert.Null(driver.Pipeline.FlushDeadline);
        Assert.Equal(9, driver.Pipeline.Accounting.DeliveredContentEvents);
    }

    [Fact]
    public void Coalescer_IntervalPassed_FlushesFewerTokens()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        driver.Process(ChatChunks.Content("b"));
        driver.Process(ChatChunks.Content("c"));
        Assert.Single(driver.ClientEvents());
        Assert.Equal(driver.Time.GetTimestamp() + TimeSpan.FromMilliseconds(20).Ticks, driver.Pipeline.FlushDeadline);
        driver.Advance(TimeSpan.FromMilliseconds(19));
        Assert.Single(driver.ClientEvents());
        driver.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("bc", ClientContent.ContentOf(driver.ClientEvents()[1]));
        Assert.Null(driver.Pipeline.FlushDeadline);
    }

    [Fact]
    public void Coalescer_FirstToken_WrittenAtOnce()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Role());
        driver.Process(ChatChunks.Content("Hello"));
        Assert.Equal("Hello", ClientContent.Join(driver.ClientEvents()));
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(8, false)]
    public void Coalescer_OneTokenPerFlushOrDisabled_EveryTokenAsItComes(int tokens, bool enabled)
    {
        using var driver = new PipelineDriver(new StreamPipelineSettings { MaxTokensPerFlush = tokens, CoalescingEnabled = enabled });
        var input = ChatChunks.Content("a") + ChatChunks.Content("b") + ChatChunks.Content("c");
        driver.Process(input);
        Assert.Equal(input, driver.OutputText);
    }

    [Fact]
    public void Coalescer_NonContentEvents_FlushPendingFirstAndKeepOrder()
    {
        using var driver = new PipelineDriver(new StreamPipelineSettings { StripUsageChunk = false });
        driver.Process(ChatChunks.Role() + ChatChunks.Content("a") + ChatChunks.Content("b") + ": keep-alive\n\n" + ChatChunks.Content("c")
            + ChatChunks.Finish() + ChatChunks.Usage() + ChatChunks.Done);
        var text = driver.OutputText;
        var order = new[] { "\"role\"", "\"content\":\"a\"", "\"content\":\"b\"", ": keep-alive", "\"content\":\"c\"", "\"finish_reason\":\"stop\"", "\"usage\"", "[DONE]" }
            .Select(s => text.IndexOf(s, StringComparison.Ordinal)).ToList();
        Assert.DoesNotContain(-1, order);
        Assert.Equal(order.Order(), order);
        Assert.True(driver.Pipeline.Accounting.DoneSeen);
        Assert.Equal(7, driver.Pipeline.Accounting.PromptTokens);
        Assert.Equal(9, driver.Pipeline.Accounting.CompletionTokens);
    }

    [Fact]
    public void Coalescer_RefusalFragments_Merged()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Refusal("I'm"));
        foreach (var fragment in new[] { " sorry", ",", " I", " can't" })
        {
            driver.Process(ChatChunks.Refusal(fragment));
        }

        driver.Process(ChatChunks.Finish() + ChatChunks.Done);
        var summary = ChatStreamSummary.From(driver.ClientEvents());
        Assert.Equal("I'm sorry, I can't", summary.Choices[0].Refusal.ToString());
        Assert.Equal("", summary.Choices[0].Content.ToString());
        // first at once, the other four merged, finish, [DONE].
        Assert.Equal(4, driver.ClientEvents().Count);
        Assert.Equal(5, driver.Pipeline.Accounting.DeliveredContentEvents);
    }

    [Theory]
    [InlineData("content")]
    [InlineData("refusal")]
    public void Coalescer_LogprobsTokenLists_ConcatenatedWithTheirText(string field)
    {
        using var driver = new PipelineDriver(s_default);
        var tokens = new[] { "Foo", "!", " Bar", " é", "z" };
        var upstream = new StringBuilder();
        for (var i = 0; i < tokens.Length; i++)
        {
            var chunk = ChatChunks.WithLogprobs(tokens[i], -0.5 * i, field);
            upstream.Append(chunk);
            driver.Process(chunk);
        }

        driver.Process(ChatChunks.Finish() + ChatChunks.Done);
        var events = driver.ClientEvents();
        // first at once, the other four merged into one, finish, [DONE].
        Assert.Equal(4, events.Count);
        var client = ChatStreamSummary.From(events);
        var expected = ChatStreamSummary.From(PipelineDriver.ParseEvents(Encoding.UTF8.GetBytes(upstream.ToString())));
        client.AssertSameLogprobs(expected, field);
        var list = field == "content" ? client.Choices[0].ContentLogprobs : client.Choices[0].RefusalLogprobs;
        Assert.Equal(5, list.Count);
        Assert.Equal(string.Concat(tokens), field == "content" ? client.Choices[0].Content.ToString() : client.Choices[0].Refusal.ToString());
        using var merged = System.Text.Json.JsonDocument.Parse(events[1]);
        Assert.Equal(4, merged.RootElement.GetProperty("choices")[0].GetProperty("logprobs").GetProperty(field).GetArrayLength());
    }

    [Fact]
    public void Coalescer_TokensWithAndWithoutLogprobs_NotMergedTogether()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        driver.Process(ChatChunks.Content("b"));
        driver.Process(ChatChunks.WithLogprobs("c", -1));
        driver.Process(ChatChunks.WithLogprobs("d", -2));
        driver.Process(ChatChunks.Content("e"));
        driver.Complete();
        var contents = driver.ClientEvents().Select(static e => ClientContent.ContentOf(e)).ToList();
        Assert.Equal(["a", "b", "cd", "e"], contents);
    }

    [Fact]
    public void Coalescer_ToolCallArgumentFragments_Merged()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.ToolStart("call_1", "get_weather"));
        foreach (var fragment in new[] { "{\"ci", "ty\": ", "\"Paris", "\"}" })
        {
            driver.Process(ChatChunks.ToolArgs(fragment));
        }

        driver.Process(ChatChunks.Finish("tool_calls") + ChatChunks.Done);
        var summary = ChatStreamSummary.From(driver.ClientEvents());
        Assert.Equal("{\"city\": \"Paris\"}", summary.Choices[0].ToolCalls[0].Arguments.ToString());
        Assert.Equal("call_1", summary.Choices[0].ToolCalls[0].Id);
        // start, first fragment at once, the other three merged, finish, [DONE].
        Assert.Equal(5, driver.ClientEvents().Count);
    }

    [Fact]
    public void Coalescer_TwoChoicesInterleaved_MergedPerChoiceInOrder()
    {
        using var driver = new PipelineDriver(s_default);
        var input = new StringBuilder();
        for (var i = 0; i < 10; i++)
        {
            input.Append(ChatChunks.Content($"a{i} ", 0)).Append(ChatChunks.Content($"b{i} ", 1));
        }

        driver.Process(input.ToString());
        driver.Process(ChatChunks.Finish(index: 0) + ChatChunks.Finish(index: 1) + ChatChunks.Done);
        var events = driver.ClientEvents();
        Assert.Equal(string.Concat(Enumerable.Range(0, 10).Select(i => $"a{i} ")), ClientContent.Join(events, 0));
        Assert.Equal(string.Concat(Enumerable.Range(0, 10).Select(i => $"b{i} ")), ClientContent.Join(events, 1));
        Assert.True(events.Count < 12, $"{events.Count} events");
    }

    [Fact]
    public void Coalescer_StripUsageChunk_RecordedNotWritten()
    {
        using var driver = new PipelineDriver(new StreamPipelineSettings { StripUsageChunk = true });
        driver.Process(ChatChunks.Content("a") + ChatChunks.Finish() + ChatChunks.Usage() + ChatChunks.Done);
        Assert.DoesNotContain("\"usage\"", driver.OutputText, StringComparison.Ordinal);
        Assert.Equal(9, driver.Pipeline.Accounting.CompletionTokens);
        Assert.Equal(3, driver.ClientEvents().Count);
    }

    [Fact]
    public void Fail_WritesHeldContentThenDropsPartialEventThenError()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a") + ChatChunks.Content("held"));
        driver.Process("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cut");
        Assert.False(driver.Pipeline.AtEventBoundary);
        driver.Fail("upstream reset \"mid-stream\"", "upstream_error", null);
        var events = driver.ClientEvents();
        Assert.Equal("aheld", ClientContent.Join(events));
        Assert.Equal("{\"error\":{\"message\":\"upstream reset \\\"mid-stream\\\"\",\"type\":\"upstream_error\",\"param\":null,\"code\":null}}", Encoding.UTF8.GetString(events[^1]));
        Assert.DoesNotContain("cut", driver.OutputText, StringComparison.Ordinal);
    }

    [Fact]
    public void Fail_PassThrough_DropsPartialEventBeforeError()
    {
        using var driver = new PipelineDriver(new StreamPipelineSettings { Kind = StreamKind.PassThrough });
        driver.Process("event: a\ndata: 1\n\nevent: b\ndata: par");
        Assert.Equal("event: a\ndata: 1\n\n", driver.OutputText);
        driver.Fail("timeout", "timeout", "upstream_timeout");
        Assert.Equal("event: a\ndata: 1\n\ndata: {\"error\":{\"message\":\"timeout\",\"type\":\"timeout\",\"param\":null,\"code\":\"upstream_timeout\"}}\n\n", driver.OutputText);
    }

    [Fact]
    public void Complete_FlushesHeldText()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a") + ChatChunks.Content("b") + ChatChunks.Content("c"));
        driver.Complete();
        Assert.Equal("abc", ClientContent.Join(driver.ClientEvents()));
        Assert.Null(driver.Pipeline.FlushDeadline);
    }

    [Fact]
    public void Coalescer_MergedEvent_KeepsFirstEnvelope()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("x"));
        for (var i = 1; i <= 8; i++)
        {
            driver.Process(ChatChunks.Event($"{{\"id\":\"c\",\"mock_emitted_us\":{i},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{i}\"}},\"finish_reason\":null}}]}}"));
        }

        Assert.Equal("{\"id\":\"c\",\"mock_emitted_us\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"12345678\"},\"finish_reason\":null}]}", Encoding.UTF8.GetString(driver.ClientEvents()[^1]));
    }

    [Fact]
    public void Coalescer_TrailingZwj_HeldUntilTheNextTokenCompletesTheCluster()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("go"));
        driver.Process(ChatChunks.Content("x \U0001F469\u200D"));
        driver.Advance(TimeSpan.FromMilliseconds(25)); // A lone token's slot, plus the grace.
        Assert.Equal("gox ", ClientContent.Join(driver.ClientEvents()));

        // Longer than one interval: at 20 tokens/s the next part comes 50 ms later, and is still joined.
        driver.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal("gox ", ClientContent.Join(driver.ClientEvents()));
        driver.Process(ChatChunks.Content("\U0001F467"));
        driver.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal("gox ", ClientContent.Join(driver.ClientEvents()));
        driver.Process(ChatChunks.Content(" ok"));
        var events = driver.ClientEvents();
        Assert.Equal("gox \U0001F469\u200D\U0001F467 ok", ClientContent.Join(events));
        Assert.Equal("\U0001F469\u200D\U0001F467 ok", ClientContent.ContentOf(events[^1]));
    }

    [Fact]
    public void Coalescer_HeldCluster_ReleasedWhenTheUpstreamGoesQuiet()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("go"));
        driver.Process(ChatChunks.Content(" \U0001F44D"));
        driver.Advance(TimeSpan.FromMilliseconds(499));
        Assert.Equal("go ", ClientContent.Join(driver.ClientEvents()));
        driver.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("go \U0001F44D", ClientContent.Join(driver.ClientEvents()));
        Assert.Null(driver.Pipeline.FlushDeadline);
    }
}

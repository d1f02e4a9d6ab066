using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// The cadence as a throttle, not a delay (issue 12, part 1): a choice is flushed at most once per interval; a token
/// that comes when the last flush is at least an interval old goes out at once, so a stream slower than the cadence
/// is never delayed by it.
/// </summary>
public sealed class CadenceThrottleTests
{
    private static readonly StreamPipelineSettings s_default = new();

    [Theory]
    [InlineData(20)]
    [InlineData(25)]
    [InlineData(250)]
    public void TokensAtLeastAnIntervalApart_EachWrittenOnArrival(int gapMs)
    {
        using var driver = new PipelineDriver(s_default);
        for (var i = 0; i < 10; i++)
        {
            var before = driver.Output.Length;
            driver.Process(ChatChunks.Content($" word{i}"));
            Assert.True(driver.Output.Length > before, $"token {i} was not written when it arrived");
            driver.Advance(TimeSpan.FromMilliseconds(gapMs));
        }

        Assert.Equal(10, driver.ClientEvents().Count);
    }

    [Fact]
    public void TokenWithinTheInterval_WaitsUntilLastFlushPlusInterval()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        var flushed = driver.Time.GetTimestamp();
        driver.Advance(TimeSpan.FromMilliseconds(15));
        driver.Process(ChatChunks.Content("b"));

        // Not 15 + 20 ms (a delay from the token's arrival): 20 ms after the last flush.
        Assert.Equal(flushed + TimeSpan.FromMilliseconds(20).Ticks, driver.Pipeline.FlushDeadline);
        driver.Advance(TimeSpan.FromMilliseconds(4));
        Assert.Single(driver.ClientEvents());
        driver.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["a", "b"], driver.ClientEvents().Select(static e => ClientContent.ContentOf(e)));
    }

    [Fact]
    public void TokensFasterThanTheInterval_MergedIntoOneEventPerInterval()
    {
        using var driver = new PipelineDriver(s_default);
        // 200 tokens/s for 100 ms: the first at once, then one event per 20 ms of 4 tokens each.
        for (var i = 0; i < 20; i++)
        {
            driver.Process(ChatChunks.Content($" w{i}"));
            driver.Advance(TimeSpan.FromMilliseconds(5));
        }

        driver.Complete();
        var events = driver.ClientEvents();
        Assert.Equal(string.Concat(Enumerable.Range(0, 20).Select(static i => $" w{i}")), ClientContent.Join(events));
        Assert.InRange(events.Count, 5, 7);
        var times = driver.Writes.Select(static w => w.Time).ToList();
        Assert.All(times.Zip(times.Skip(1)), static pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(20).Ticks));
    }

    [Fact]
    public void LateWakeUp_DoesNotPushTheNextSlotBack()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        var start = driver.Time.GetTimestamp();
        driver.Time.Advance(TimeSpan.FromMilliseconds(10));
        driver.Process(ChatChunks.Content("b"));

        // The wake-up for the 20 ms slot comes 7 ms late (a busy machine): "b" goes then...
        driver.Time.Advance(TimeSpan.FromMilliseconds(17));
        var late = new System.Buffers.ArrayBufferWriter<byte>();
        driver.Pipeline.OnDeadline(late);
        Assert.Contains("\"content\":\"b\"", System.Text.Encoding.UTF8.GetString(late.WrittenSpan), StringComparison.Ordinal);

        // ... and a token at 40 ms, an interval after the slot, still goes out at once.
        driver.Time.Advance(TimeSpan.FromMilliseconds(13));
        var before = driver.Output.Length;
        driver.Process(ChatChunks.Content("c"));
        Assert.True(driver.Output.Length > before, "the token after the late flush waited");
        Assert.Equal(start + TimeSpan.FromMilliseconds(40).Ticks, driver.Time.GetTimestamp());
    }

    [Fact]
    public void MaxTokens_FlushBeforeTheInterval()
    {
        using var driver = new PipelineDriver(s_default with { MaxTokensPerFlush = 4 });
        driver.Process(ChatChunks.Content("first"));
        for (var i = 0; i < 4; i++)
        {
            driver.Process(ChatChunks.Content($" {i}"));
        }

        Assert.Equal(2, driver.ClientEvents().Count);
        Assert.Null(driver.Pipeline.FlushDeadline);
    }
}

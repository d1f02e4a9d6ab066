using Relay.Middleware.Cadence;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>
/// The cadence as a throttle, not a delay: a choice is flushed at most once per interval; a token
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

    [Theory]
    [InlineData(15)]
    [InlineData(18)]
    public void JitteredTokensAtTheCadence_GoOutAtOnce(int gapMs)
    {
        // 50 tokens/s as upstreams pace it: about 20 ms apart, some early. A token three quarters of an interval or
        // more after the last flush is not held back.
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        driver.Advance(TimeSpan.FromMilliseconds(gapMs));
        driver.Process(ChatChunks.Content("b"));
        Assert.Equal(2, driver.ClientEvents().Count);
    }

    [Fact]
    public void TokenWithinTheInterval_WaitsUntilLastFlushPlusInterval_AndALoneTokenAQuarterIntervalMore()
    {
        using var driver = new PipelineDriver(s_default);
        driver.Process(ChatChunks.Content("a"));
        var flushed = driver.Time.GetTimestamp();
        driver.Advance(TimeSpan.FromMilliseconds(12));
        driver.Process(ChatChunks.Content("b"));

        // Not 12 + 20 ms (a delay from the token's arrival): 20 ms after the last flush.
        Assert.Equal(flushed + TimeSpan.FromMilliseconds(20).Ticks, driver.Pipeline.FlushDeadline);
        driver.Advance(TimeSpan.FromMilliseconds(8));

        // On its slot, a lone token waits 5 ms more for the next, then goes alone.
        Assert.Single(driver.ClientEvents());
        Assert.Equal(flushed + TimeSpan.FromMilliseconds(25).Ticks, driver.Pipeline.FlushDeadline);
        driver.Advance(TimeSpan.FromMilliseconds(4));
        Assert.Single(driver.ClientEvents());
        driver.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["a", "b"], driver.ClientEvents().Select(static e => ClientContent.ContentOf(e)));
    }

    [Fact]
    public void HundredTokensPerSecond_TheTimerFiringFirstOnEachSlot_TwoTokensPerEvent_NoTokenButTheLastWaitsMoreThanTenMs()
    {
        // Tokens every 10 ms: every other one arrives exactly on the older one's slot, and the timer fires first (the
        // driver runs deadlines before the token at the same instant). Without the grace the older token goes alone,
        // the interval restarts, and the one that just missed it waits 20 ms.
        using var driver = new PipelineDriver(s_default);
        var arrivals = new List<long>();
        for (var i = 0; i < 40; i++)
        {
            arrivals.Add(driver.Time.GetTimestamp());
            driver.Process(ChatChunks.Content($" w{i}"));
            driver.Advance(TimeSpan.FromMilliseconds(10));
        }

        driver.Advance(TimeSpan.FromMilliseconds(10)); // The last token has no next one: it goes at its slot plus the grace.
        var events = driver.ClientEvents();
        Assert.Equal(string.Concat(Enumerable.Range(0, 40).Select(static i => $" w{i}")), ClientContent.Join(events));
        Assert.InRange(events.Count, 20, 22);

        // When each token reached the client: the first write after which the client's text holds it.
        var delivered = 0;
        foreach (var (time, length) in driver.Writes)
        {
            var text = ClientContent.Join(PipelineDriver.ParseEvents(driver.Output[..length]));
            for (; delivered < 40 && text.Contains($" w{delivered} ", StringComparison.Ordinal) || (delivered < 40 && text.EndsWith($" w{delivered}", StringComparison.Ordinal)); delivered++)
            {
                var waited = TimeSpan.FromTicks(time - arrivals[delivered]);
                Assert.True(waited <= TimeSpan.FromMilliseconds(delivered == 39 ? 15 : 10), $"token {delivered} waited {waited.TotalMilliseconds} ms");
            }
        }

        Assert.Equal(40, delivered);
    }

    [Fact]
    public void TokensFasterThanTheInterval_MergedIntoOneEventPerInterval()
    {
        using var driver = new PipelineDriver(s_default);
        // 200 tokens/s for 100 ms: the first at once, then one event per 15 to 20 ms of 3 or 4 tokens each.
        for (var i = 0; i < 20; i++)
        {
            driver.Process(ChatChunks.Content($" w{i}"));
            driver.Advance(TimeSpan.FromMilliseconds(5));
        }

        var throttled = driver.Writes.Count;
        driver.Complete();
        var events = driver.ClientEvents();
        Assert.Equal(string.Concat(Enumerable.Range(0, 20).Select(static i => $" w{i}")), ClientContent.Join(events));
        Assert.InRange(events.Count, 5, 8);
        // The throttle's own flushes (the end of the stream flushes what is left at once).
        var times = driver.Writes.Take(throttled).Select(static w => w.Time).ToList();
        // At most one flush per ~20 ms: never two within three quarters of the interval.
        Assert.All(times.Zip(times.Skip(1)), static pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(15).Ticks));
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

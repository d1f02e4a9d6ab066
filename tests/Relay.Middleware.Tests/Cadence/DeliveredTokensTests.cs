using Relay.Middleware.Cadence;
using Relay.Middleware.Streaming;

namespace Relay.Middleware.Tests.Cadence;

/// <summary>Delivered tokens in the usage record never exceed generated ones, whatever the upstream's event split.</summary>
public sealed class DeliveredTokensTests
{
    [Theory]
    [InlineData(4, 4, 3L, 3)]      // one token split over two events, all delivered: all 3 tokens
    [InlineData(2, 4, 3L, 1)]      // cut halfway: its share, rounded down
    [InlineData(10, 10, 10L, 10)]  // one event per token
    [InlineData(5, 8, null, 5)]    // no usage from the upstream: events are the count
    [InlineData(0, 0, 7L, 0)]
    public void DeliveredTokens_FollowUsageWhenKnown(long delivered, long upstream, long? usage, long expected)
    {
        var accounting = new StreamAccounting { DeliveredContentEvents = delivered, UpstreamContentEvents = upstream, CompletionTokens = usage };
        Assert.Equal(expected, StreamAccountingRecorder.DeliveredTokens(accounting));
    }
}

using System.Threading.Channels;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A usage sink that notes when each stream's record came (<see cref="SseRead.NowUs"/>: the machine's monotonic clock,
/// the clock of the simulated upstream's emit times and of Node's <c>process.hrtime</c>), so a test can put what a
/// client saw in order with the end of the stream in Relay.
/// </summary>
public sealed class TimedUsageSink : IStreamUsageSink
{
    private readonly Channel<(StreamUsageRecord Record, long EndedUs)> _records = Channel.CreateUnbounded<(StreamUsageRecord, long)>();

    public void OnStreamEnded(StreamUsageRecord record) => _records.Writer.TryWrite((record, SseRead.NowUs()));

    /// <summary>The first record (in the order they came) that matches, waited for up to <see cref="Deadline.Default"/>.</summary>
    public async Task<(StreamUsageRecord Record, long EndedUs)> FirstAsync(Func<StreamUsageRecord, bool> match)
    {
        using var deadline = new CancellationTokenSource(Deadline.Default);
        while (true)
        {
            var next = await _records.Reader.ReadAsync(deadline.Token);
            if (match(next.Record))
            {
                return next;
            }
        }
    }
}

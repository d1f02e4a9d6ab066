using System.Collections.Concurrent;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.State;

/// <summary>Keeps every usage record of one instance, in the queue <paramref name="records"/> names when the record comes.</summary>
internal sealed class QueueSink(Func<ConcurrentQueue<StreamUsageRecord>> records) : IStreamUsageSink
{
    public QueueSink(ConcurrentQueue<StreamUsageRecord> records)
        : this(() => records)
    {
    }

    public void OnStreamEnded(StreamUsageRecord record) => records().Enqueue(record);
}

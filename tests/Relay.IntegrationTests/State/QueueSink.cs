using System.Collections.Concurrent;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.State;

/// <summary>Keeps every usage record of one instance.</summary>
internal sealed class QueueSink(ConcurrentQueue<StreamUsageRecord> records) : IStreamUsageSink
{
    public void OnStreamEnded(StreamUsageRecord record) => records.Enqueue(record);
}

using System.Collections.Concurrent;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>A usage sink that hands each stream's record to the test waiting for it.</summary>
public sealed class CapturingUsageSink : IStreamUsageSink
{
    private readonly ConcurrentQueue<TaskCompletionSource<StreamUsageRecord>> _waiting = new();

    /// <summary>The record of the next stream to end.</summary>
    public Task<StreamUsageRecord> Next()
    {
        var tcs = new TaskCompletionSource<StreamUsageRecord>(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiting.Enqueue(tcs);
        return tcs.Task;
    }

    public void OnStreamEnded(StreamUsageRecord record)
    {
        if (_waiting.TryDequeue(out var tcs))
        {
            tcs.TrySetResult(record);
        }
    }
}

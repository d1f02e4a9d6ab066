namespace Relay.Middleware.Accounting;

/// <summary>Receives a <see cref="StreamUsageRecord"/> for every relayed stream (billing, quotas, audit).</summary>
public interface IStreamUsageSink
{
    /// <summary>Called once per stream, after it ended. Must not block.</summary>
    void OnStreamEnded(StreamUsageRecord record);
}

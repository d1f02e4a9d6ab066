using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Cancellation;
using Relay.Middleware.State;
using StackExchange.Redis;

namespace Relay.Middleware.Resume;

/// <summary>
/// The resumable streams this instance relays, and its cancel channel: a cancel sent to any instance is published to
/// the channel of the instance that owns the stream (<c>relay:resume:cancel:{instance}</c>), which stops it here.
/// </summary>
internal sealed partial class ResumableStreams(RedisState redis, TimeProvider time, ILogger<ResumableStreams> logger) : IDisposable
{
    /// <summary>How long the instance's liveness key lives; it is renewed every third of that.</summary>
    internal static readonly TimeSpan AliveLifetime = TimeSpan.FromSeconds(6);

    private readonly ConcurrentDictionary<string, ResumableStream> _local = new(StringComparer.Ordinal);
    private int _subscribed;
    private ITimer? _alive;

    /// <summary>This process, among the instances that share Redis.</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString("N");

    public void Add(ResumableStream stream)
    {
        _local[stream.Id] = stream;
        if (Volatile.Read(ref _subscribed) == 0)
        {
            _ = SubscribeAsync();
        }

        if (Volatile.Read(ref _alive) is null)
        {
            StartLiveness();
        }
        else
        {
            RenewLiveness(); // Also after Redis came back empty: a follower of this stream finds the key at once.
        }
    }

    public void Dispose() => _alive?.Dispose();

    /// <summary>
    /// Keeps this instance's liveness key while the process runs (from its first resumable stream on): a follower on
    /// another instance ends its reader with a final event when the instance relaying the stream died without ending it.
    /// </summary>
    private void StartLiveness()
    {
        var timer = time.CreateTimer(static s => ((ResumableStreams)s!).RenewLiveness(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        if (Interlocked.CompareExchange(ref _alive, timer, null) is not null)
        {
            timer.Dispose();
            return;
        }

        RenewLiveness();
        timer.Change(AliveLifetime / 3, AliveLifetime / 3);
    }

    private void RenewLiveness()
    {
        try
        {
            redis.Database.StringSet(ResumeKeys.Instance(InstanceId), 1, AliveLifetime, flags: StackExchange.Redis.CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            // Redis is down: followers cannot read either; the next renewal sets it again.
        }
    }

    public void Remove(ResumableStream stream) => _local.TryRemove(KeyValuePair.Create(stream.Id, stream));

    /// <summary>Stops a stream relayed here. False when this instance does not relay it (any more).</summary>
    public bool TryCancelLocal(string streamId)
    {
        if (!_local.TryGetValue(streamId, out var stream))
        {
            return false;
        }

        stream.Stop(StreamEndReason.CancelledByRequest);
        return true;
    }

    /// <summary>Listens on this instance's cancel channel (the client library re-subscribes after a reconnect).</summary>
    public async Task SubscribeAsync()
    {
        if (Interlocked.Exchange(ref _subscribed, 1) == 1)
        {
            return;
        }

        try
        {
            // The stop runs on the thread pool, not on the client library's message thread: cancelling a stream runs the
            // relay loop's continuations inline, and a handler that is busy holds up every later cancel.
            await redis.Connection.GetSubscriber().SubscribeAsync(ResumeKeys.CancelChannel(InstanceId),
                (_, message) => ThreadPool.UnsafeQueueUserWorkItem(static s => s.Streams.TryCancelLocal(s.Id), (Streams: this, Id: (string)message!), preferLocal: false))
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            Volatile.Write(ref _subscribed, 0);
            Log.SubscribeFailed(logger, ex.GetType().Name);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1520, LogLevel.Warning, "Could not subscribe to this instance's cancel channel ({Failure}); retried with the next resumable stream.", EventName = "ResumeCancelSubscribeFailed")]
        public static partial void SubscribeFailed(ILogger logger, string failure);
    }
}

using Microsoft.Extensions.Logging;
using Relay.Middleware.State;
using StackExchange.Redis;

namespace Relay.Middleware.Resume;

/// <summary>
/// Wakes the followers of live resumable streams on this instance when their streams get new events: one loop of
/// <c>XREAD BLOCK</c> over every stream followed here, instead of each follower polling Redis. A follower reads the
/// events itself (<c>XRANGE</c> after the last one it wrote); the feed only says when there is something to read.
/// </summary>
/// <remarks>
/// StackExchange.Redis does not run blocking commands on a shared multiplexer (every command behind one waits for it), so
/// the loop has a multiplexer of its own, connected on the first follow, that carries nothing else. A follow of a stream
/// the blocked read does not name yet interrupts it by adding to this instance's wake stream, which the read always
/// names after the last wake entry it has seen (the stream keeps one entry: the first read returns it at once).
/// </remarks>
internal sealed partial class LiveEventFeed(RedisState redis, ResumableStreams streams, TimeProvider time, ILogger<LiveEventFeed> logger) : IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Followed> _followed = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _work = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;
    private RedisValue _wakeSeen = "0-0";

    // A read names every followed stream and returns as soon as any of them has a new event: with many followed streams
    // each read costs O(streams) on both ends, so reads start at most every 5 ms (a follower sees an event up to 5 ms
    // later; the live client is not affected), and each picks up everything that arrived meanwhile.
    private const int BusyFollowCount = 16;
    private static readonly TimeSpan BusyRoundInterval = TimeSpan.FromMilliseconds(5);

    /// <summary>How long one blocking read waits on the server before it is sent again (under the client's 5 s command timeout).</summary>
    internal TimeSpan Block { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// For tests only: replaces the followers' own wait (their one-second fallback), so that a test sees events reach a
    /// follower through this feed's reads alone.
    /// </summary>
    internal TimeSpan? FollowerWaitOverride { get; set; }

    private long _reads;

    /// <summary>How many blocking reads the loop has sent (for tests and diagnostics).</summary>
    internal long Reads => Interlocked.Read(ref _reads);

    private RedisKey WakeKey => $"relay:resume:wake:{streams.InstanceId}";

    /// <summary>Follows a stream from the event after <paramref name="after"/>: dispose the result when the follower leaves.</summary>
    public Follower Follow(string streamId, long after)
    {
        bool added;
        lock (_lock)
        {
            added = !_followed.TryGetValue(streamId, out var followed);
            if (added)
            {
                followed = new Followed(ResumeKeys.Events(streamId), after);
                _followed.Add(streamId, followed);
            }

            followed!.Followers++;
            _loop ??= Task.Run(RunAsync);
            _work.TrySetResult();
        }

        if (added)
        {
            Wake();
        }

        return new Follower(this, streamId);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        _stopping.Dispose();
    }

    /// <summary>Waits until the stream has an event after <paramref name="after"/>, or <paramref name="timeout"/> passes. True when there is one.</summary>
    private async ValueTask<bool> WaitAsync(string streamId, long after, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Task changed;
        lock (_lock)
        {
            var followed = _followed[streamId];
            if (followed.Seen > after)
            {
                return true;
            }

            changed = followed.Changed.Task;
        }

        try
        {
            await changed.WaitAsync(FollowerWaitOverride ?? timeout, time, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void Leave(string streamId)
    {
        lock (_lock)
        {
            if (_followed.TryGetValue(streamId, out var followed) && --followed.Followers == 0)
            {
                _followed.Remove(streamId);
            }
        }
    }

    private void Wake()
    {
        try
        {
            var db = redis.Database;
            db.StreamAdd(WakeKey, "w", 1, maxLength: 1, flags: CommandFlags.FireAndForget);
            db.KeyExpire(WakeKey, TimeSpan.FromHours(1), CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            // The loop's next read (within Block) names the stream anyway; the follower's own timeout covers the rest.
        }
    }

    private async Task RunAsync()
    {
        ConnectionMultiplexer? connection = null;
        try
        {
            connection = await redis.ConnectDedicatedAsync("relay-resume-feed").ConfigureAwait(false);
            var db = connection.GetDatabase();
            var roundStarted = 0L;
            var busy = false;
            while (!_stopping.IsCancellationRequested)
            {
                // A timer may fire up to a millisecond early (the timer queue counts whole milliseconds): wait until it is 5 ms.
                while (busy && time.GetElapsedTime(roundStarted) is var elapsed && elapsed < BusyRoundInterval)
                {
                    await Task.Delay(BusyRoundInterval - elapsed, time, _stopping.Token).ConfigureAwait(false);
                }

                var (streamIds, arguments) = Snapshot();
                busy = streamIds.Length > BusyFollowCount;
                if (streamIds.Length == 0)
                {
                    await _work.Task.WaitAsync(_stopping.Token).ConfigureAwait(false);
                    continue;
                }

                roundStarted = time.GetTimestamp();
                Interlocked.Increment(ref _reads);
                RedisResult result;
                try
                {
                    result = await db.ExecuteAsync("XREAD", arguments).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException)
                {
                    Log.ReadFailed(logger, ex.GetType().Name);
                    await Task.Delay(Block, time, _stopping.Token).ConfigureAwait(false);
                    continue;
                }

                try
                {
                    Deliver(streamIds, result);
                }
                catch (Exception ex) when (ex is InvalidCastException or IndexOutOfRangeException or FormatException)
                {
                    // An answer of a shape this code does not know: followers still have their own timeout.
                    Log.ReadFailed(logger, ex.GetType().Name);
                    await Task.Delay(Block, time, _stopping.Token).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is RedisException or StateStoreUnavailableException)
        {
            // Could not connect at all: followers fall back on their own timeout; the next follow starts the loop again.
            Log.ReadFailed(logger, ex.GetType().Name);
            lock (_lock)
            {
                _loop = null;
            }
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The streams to read and the XREAD arguments: BLOCK, COUNT, STREAMS, each key, the wake key, each last-seen id, the last wake id.</summary>
    private (string[] StreamIds, object[] Arguments) Snapshot()
    {
        lock (_lock)
        {
            if (_followed.Count == 0)
            {
                _work = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return ([], []);
            }

            var n = _followed.Count;
            var ids = new string[n];
            var arguments = new object[5 + (2 * (n + 1))];
            arguments[0] = "BLOCK";
            arguments[1] = (long)Block.TotalMilliseconds;
            arguments[2] = "COUNT";
            arguments[3] = 64;
            arguments[4] = "STREAMS";
            var i = 0;
            foreach (var (id, followed) in _followed)
            {
                ids[i] = id;
                arguments[5 + i] = followed.Key;
                arguments[6 + n + i] = ResumeKeys.EntryId(followed.Seen);
                i++;
            }

            arguments[5 + n] = WakeKey;
            arguments[6 + n + n] = _wakeSeen;
            return (ids, arguments);
        }
    }

    /// <summary>Records the newest event of each stream the read returned and wakes that stream's followers.</summary>
    private void Deliver(string[] streamIds, RedisResult result)
    {
        if (result.IsNull || result.Length == 0)
        {
            return; // The block ran out with nothing new.
        }

        // RESP3 answers with a map (key, entries, key, entries...), RESP2 with an array of [key, entries] pairs.
        var map = result.Resp3Type == ResultType.Map;
        var streamsRead = map ? result.Length / 2 : result.Length;
        var keys = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < streamsRead; i++)
        {
            var entries = map ? result[(2 * i) + 1] : result[i][1];
            if (entries.Length == 0)
            {
                continue;
            }

            var key = (string)(map ? result[2 * i] : result[i][0])!;
            var newest = (RedisValue)entries[entries.Length - 1][0];
            if (key == (string)WakeKey!)
            {
                _wakeSeen = newest;
            }
            else
            {
                keys[key] = ResumeKeys.Sequence(newest);
            }
        }

        lock (_lock)
        {
            foreach (var id in streamIds)
            {
                if (_followed.TryGetValue(id, out var followed) && keys.TryGetValue((string)followed.Key!, out var newest) && newest > followed.Seen)
                {
                    followed.Seen = newest;
                    followed.Changed.TrySetResult();
                    followed.Changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
        }
    }

    /// <summary>One follower of a stream on this instance.</summary>
    internal sealed class Follower(LiveEventFeed feed, string streamId) : IDisposable
    {
        /// <summary>Waits until the stream has an event after <paramref name="after"/> (true), or <paramref name="timeout"/> passes (false).</summary>
        public ValueTask<bool> WaitAsync(long after, TimeSpan timeout, CancellationToken cancellationToken) => feed.WaitAsync(streamId, after, timeout, cancellationToken);

        public void Dispose() => feed.Leave(streamId);
    }

    private sealed class Followed(RedisKey key, long seen)
    {
        public RedisKey Key { get; } = key;

        /// <summary>The newest event the feed has seen (at first, where the first follower started).</summary>
        public long Seen { get; set; } = seen;

        public int Followers { get; set; }

        public TaskCompletionSource Changed { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static partial class Log
    {
        [LoggerMessage(1534, LogLevel.Debug, "The live read of resumable streams failed ({Failure}); followers fall back on their own timeout until it works again.", EventName = "ResumeLiveReadFailed")]
        public static partial void ReadFailed(ILogger logger, string failure);
    }
}

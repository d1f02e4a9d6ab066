using System.Threading.Tasks.Sources;

namespace Relay.Middleware.Streaming;

/// <summary>
/// Wakes one stream's loop for whichever comes first: the outstanding upstream read completing, or the loop's next
/// deadline (cadence, heartbeat). One reusable awaitable per stream, so a wake allocates nothing (no
/// <c>Task.WhenAny</c>, no <c>AsTask</c>), and the upstream read stays pending across wakes: it is never cancelled
/// to wake the loop, because cancelling a read of an HttpClient response stream tears the connection down.
/// </summary>
/// <remarks>
/// The timer is created on the first deadline, so a stream that never has one (pass-through without heartbeats)
/// has none. Each <see cref="WaitAsync"/> completes exactly once: the read's continuation, the timer and the loop's
/// own check race for it through <see cref="_waiting"/>, and the losers do nothing (the loop re-checks the read and
/// the clock after every wake, so a lost signal is never a lost wake).
/// </remarks>
internal sealed class StreamLoopWakeup : IValueTaskSource, IDisposable
{
    private readonly TimeProvider _time;
    private readonly Action _signal;
    private ManualResetValueTaskSourceCore<bool> _core;
    private ITimer? _timer;
    private long _armedFor = long.MaxValue;
    private int _waiting;

    public StreamLoopWakeup(TimeProvider time)
    {
        _time = time;
        _signal = Signal;
    }

    /// <summary>
    /// Waits until <paramref name="read"/> completes or the clock reaches <paramref name="deadline"/>
    /// (<see cref="long.MaxValue"/>: none). Pass <paramref name="newRead"/> the first time a read is waited for: its
    /// completion is then watched (a read can be watched only once).
    /// </summary>
    public ValueTask WaitAsync(ValueTask<int> read, bool newRead, long deadline)
    {
        // Only an earlier deadline re-arms the timer. A later one (the heartbeat's, which moves with every write) lets
        // the armed timer fire early: the loop finds nothing due and re-arms, at most once per heartbeat interval
        // instead of a timer change per event.
        if (deadline < Volatile.Read(ref _armedFor))
        {
            Arm(deadline);
        }

        _core.Reset();
        Volatile.Write(ref _waiting, 1);
        if (newRead)
        {
            read.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_signal);
        }
        else if (read.IsCompleted)
        {
            Signal();
        }

        // The timer may have fired between the check above and the wait starting; its signal found nobody waiting.
        if (deadline <= _time.GetTimestamp())
        {
            Signal();
        }

        return new ValueTask(this, _core.Version);
    }

    private void Arm(long deadline)
    {
        _timer ??= _time.CreateTimer(static s =>
        {
            var wakeup = (StreamLoopWakeup)s!;
            Volatile.Write(ref wakeup._armedFor, long.MaxValue);
            wakeup.Signal();
        }, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Volatile.Write(ref _armedFor, deadline);
        var delay = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
        _timer.Change(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
    }

    private void Signal()
    {
        if (Interlocked.Exchange(ref _waiting, 0) == 1)
        {
            _core.SetResult(true);
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);

    public void Dispose() => _timer?.Dispose();
}

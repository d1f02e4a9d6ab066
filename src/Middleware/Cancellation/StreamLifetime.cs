using Microsoft.AspNetCore.Http.Features;

namespace Relay.Middleware.Cancellation;

/// <summary>
/// One cancellation token per relayed request that fires for every reason the request must stop: the client
/// went away, a timeout (first token, idle, hard maximum, write stall), or shutdown. It is installed as the
/// request's <see cref="IHttpRequestLifetimeFeature"/>, so YARP's upstream request is linked to it and is
/// cancelled (connection closed or RST_STREAM sent) the moment any reason fires.
/// </summary>
/// <remarks>
/// All deadlines share one timer that is armed for the earliest deadline. Deadlines that move later on the
/// hot path (the idle deadline after each upstream read) are plain field writes: when the timer fires early
/// it re-arms itself for the new earliest deadline instead of being changed on every read.
/// </remarks>
internal sealed class StreamLifetime : IHttpRequestLifetimeFeature, IDisposable
{
    private const long None = long.MaxValue;

    private readonly TimeProvider _time;
    private readonly IHttpRequestLifetimeFeature? _inner;
    private readonly CancellationTokenSource _cts = new();
    private readonly ITimer _timer;
    private readonly Lock _scheduleLock = new();
    private readonly long _idleTicks;
    private readonly long _writeStallTicks;
    private CancellationTokenRegistration _innerRegistration;
    private long _firstByteDeadline;
    private long _idleDeadline = None;
    private long _maxDurationDeadline;
    private long _writeStallDeadline = None;
    private long _scheduledFor = None;
    private int _reason;
    private bool _disposed;

    /// <summary>Starts the lifetime of one request now.</summary>
    public StreamLifetime(TimeProvider time, IHttpRequestLifetimeFeature? inner, StreamTimeouts timeouts)
    {
        _time = time;
        _inner = inner;
        StartedAt = time.GetTimestamp();
        Timeouts = timeouts;
        _idleTicks = ToTicks(timeouts.Idle);
        _writeStallTicks = ToTicks(timeouts.WriteStall);
        _firstByteDeadline = Deadline(StartedAt, timeouts.FirstToken);
        _maxDurationDeadline = Deadline(StartedAt, timeouts.MaxDuration);
        _timer = time.CreateTimer(static s => ((StreamLifetime)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Reschedule();
        if (inner is not null)
        {
            // Client disconnects arrive here (Kestrel's RequestAborted): propagate synchronously, so the
            // upstream request is torn down on the same thread that noticed the disconnect.
            _innerRegistration = inner.RequestAborted.UnsafeRegister(static s => ((StreamLifetime)s!).Cancel(StreamEndReason.ClientCancelled), this);
        }
    }

    /// <summary>The timeouts in force.</summary>
    public StreamTimeouts Timeouts { get; }

    /// <summary>When the request started (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long StartedAt { get; }

    /// <summary>When the first byte went to the client, or 0.</summary>
    public long FirstByteAt { get; private set; }

    /// <summary>Fires when the request must stop, for any reason.</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>Why the request stopped (the first reason wins), or <see cref="StreamEndReason.None"/>.</summary>
    public StreamEndReason Reason => (StreamEndReason)Volatile.Read(ref _reason);

    /// <summary>Whether the client itself went away.</summary>
    public bool ClientGone => _inner?.RequestAborted.IsCancellationRequested == true;

    CancellationToken IHttpRequestLifetimeFeature.RequestAborted
    {
        get => _cts.Token;
        set => throw new NotSupportedException("Relay owns the request's cancellation.");
    }

    /// <summary>Aborts the client connection (the real one).</summary>
    public void Abort() => _inner?.Abort();

    /// <summary>Records <paramref name="reason"/> (unless another came first) and cancels.</summary>
    public bool Cancel(StreamEndReason reason)
    {
        if (Interlocked.CompareExchange(ref _reason, (int)reason, (int)StreamEndReason.None) != (int)StreamEndReason.None)
        {
            return false;
        }

        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        return true;
    }

    /// <summary>Marks the end of a request that finished without cancellation.</summary>
    public void Complete(StreamEndReason reason)
        => Interlocked.CompareExchange(ref _reason, (int)reason, (int)StreamEndReason.None);

    /// <summary>The first byte went to the client: the first-token timeout is over and the idle timeout begins.</summary>
    public void OnFirstByteSent()
    {
        if (FirstByteAt != 0)
        {
            return;
        }

        FirstByteAt = _time.GetTimestamp();
        Volatile.Write(ref _firstByteDeadline, None);
    }

    /// <summary>Bytes arrived from the upstream (Relay's own heartbeats are not upstream activity).</summary>
    public void OnUpstreamActivity()
    {
        if (_idleTicks == 0)
        {
            return;
        }

        var deadline = _time.GetTimestamp() + _idleTicks;
        Volatile.Write(ref _idleDeadline, deadline);
        if (deadline < Volatile.Read(ref _scheduledFor))
        {
            Reschedule();
        }
    }

    /// <summary>A write to the client did not complete at once: the write-stall clock runs until <see cref="EndStalledWrite"/>.</summary>
    public void BeginStalledWrite()
    {
        if (_writeStallTicks == 0)
        {
            return;
        }

        Volatile.Write(ref _writeStallDeadline, _time.GetTimestamp() + _writeStallTicks);
        Reschedule();
    }

    /// <summary>The stalled write completed.</summary>
    public void EndStalledWrite() => Volatile.Write(ref _writeStallDeadline, None);

    /// <summary>
    /// What happens when a write stalls for the write-stall time, instead of cancelling the request: true when the
    /// handler dealt with it (a resumable stream lets its stalled client go and goes on generating).
    /// </summary>
    public Func<bool>? WriteStallHandler { get; set; }

    private void OnTimer()
    {
        var now = _time.GetTimestamp();
        if (now >= Volatile.Read(ref _firstByteDeadline))
        {
            Cancel(StreamEndReason.FirstTokenTimeout);
        }
        else if (now >= Volatile.Read(ref _writeStallDeadline))
        {
            if (WriteStallHandler?.Invoke() == true)
            {
                Volatile.Write(ref _writeStallDeadline, None);
            }
            else
            {
                Cancel(StreamEndReason.WriteStallTimeout);
            }
        }
        else if (now >= Volatile.Read(ref _maxDurationDeadline))
        {
            Cancel(StreamEndReason.MaxDurationTimeout);
        }
        else if (now >= Volatile.Read(ref _idleDeadline))
        {
            Cancel(StreamEndReason.IdleTimeout);
        }

        if (Reason == StreamEndReason.None)
        {
            lock (_scheduleLock)
            {
                _scheduledFor = None;
            }

            Reschedule();
        }
    }

    private void Reschedule()
    {
        lock (_scheduleLock)
        {
            if (_disposed)
            {
                return;
            }

            var next = Math.Min(
                Math.Min(Volatile.Read(ref _firstByteDeadline), Volatile.Read(ref _idleDeadline)),
                Math.Min(Volatile.Read(ref _maxDurationDeadline), Volatile.Read(ref _writeStallDeadline)));
            if (next == None || next >= _scheduledFor)
            {
                return;
            }

            _scheduledFor = next;
            var due = _time.GetElapsedTime(_time.GetTimestamp(), next);
            _timer.Change(due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
        }
    }

    private long ToTicks(TimeSpan span)
        => span <= TimeSpan.Zero ? 0 : (long)(span.TotalSeconds * _time.TimestampFrequency);

    private long Deadline(long start, TimeSpan span)
        => span <= TimeSpan.Zero ? None : start + ToTicks(span);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_scheduleLock)
        {
            _disposed = true;
        }

        _innerRegistration.Dispose();
        _timer.Dispose();
        _cts.Dispose();
    }
}

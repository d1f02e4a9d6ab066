using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Resume;
using Relay.Middleware.State;

namespace Relay.Middleware.Tests.Resume;

/// <summary>
/// <c>Resume:DetachedSeconds</c> on a <see cref="FakeTimeProvider"/>: once the client of a resumable stream is gone,
/// generation goes on for exactly the detached time, then stops (the integration tests show only that it stops, and
/// why). Redis is not reachable here: the check for a reader on another instance fails, which counts as none.
/// </summary>
public sealed class DetachedTimeTests : IAsyncDisposable
{
    private const double DetachedSeconds = 30;
    private readonly FakeTimeProvider _time = new();
    private readonly RedisState _redis = new(Options.Create(new RelayOptions { State = { Redis = "127.0.0.1:1,connectTimeout=200" } }), NullLogger<RedisState>.Instance);
    private readonly StreamLifetime _lifetime;
    private readonly ResumableStream _stream;

    public DetachedTimeTests()
    {
        _lifetime = new StreamLifetime(_time, null, StreamTimeouts.FromOptions(new TimeoutOptions { FirstTokenSeconds = 0, IdleSeconds = 0, MaxDurationSeconds = 0, WriteStallSeconds = 0 }));
        _stream = new ResumableStream("rs_AAAAAAAAAAAAAAAAAAAAAA", _redis, new ResumeOptions { Enabled = true, DetachedSeconds = DetachedSeconds }, _lifetime, _time, NullLogger.Instance);
    }

    public async ValueTask DisposeAsync()
    {
        _stream.Dispose();
        _lifetime.Dispose();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task ClientGone_NoReaderAnywhere_GenerationGoesOnForTheDetachedTime_ThenStops()
    {
        _stream.Detach();
        _time.Advance(TimeSpan.FromSeconds(DetachedSeconds) - TimeSpan.FromMilliseconds(1));
        Assert.False(_lifetime.Token.IsCancellationRequested, "stopped before its detached time");

        _time.Advance(TimeSpan.FromMilliseconds(1));
        await CancelledAsync(_lifetime.Token);
        Assert.Equal(StreamEndReason.DetachedTimeout, _lifetime.Reason);
    }

    [Fact]
    public void Control_ClientStillReading_TimePassing_DoesNotStopGeneration()
    {
        _time.Advance(TimeSpan.FromHours(1));
        Assert.False(_lifetime.Token.IsCancellationRequested);
        Assert.True(_stream.Attached);
    }

    /// <summary>Waits for the stop itself (the timer's callback asks Redis first); the deadline only ends a real failure.</summary>
    private static async Task CancelledAsync(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = token.Register(() => cancelled.TrySetResult());
        await cancelled.Task.WaitAsync(Deadline.Default);
    }
}

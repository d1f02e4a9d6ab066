namespace MockInference;

/// <summary>
/// When each token is due: token i at start + ttft + stalls + i / rate. Waiting for an absolute due time,
/// not sleeping 1/rate after each token, keeps the long-run rate exact whatever each write costs.
/// </summary>
internal sealed class TokenSchedule(TimeProvider timeProvider, long startTimestamp, MockKnobs knobs)
{
    private TimeSpan _stalls;

    /// <summary>
    /// Makes token <paramref name="tokenIndex"/> due <paramref name="stall"/> from now and pushes every later
    /// token back with it. Measured from now, not from the token's due time, so the pause is silent for its
    /// full length even when the stream is running late.
    /// </summary>
    public void AddStall(int tokenIndex, TimeSpan stall)
    {
        var lag = timeProvider.GetElapsedTime(startTimestamp) - DueTime(tokenIndex);
        if (lag > TimeSpan.Zero)
        {
            _stalls += lag;
        }

        _stalls += stall;
    }

    public TimeSpan DueTime(int tokenIndex)
    {
        var due = knobs.Ttft + _stalls;
        if (!knobs.Unpaced)
        {
            due += TimeSpan.FromSeconds(tokenIndex / knobs.TokensPerSecond);
        }

        return due;
    }

    public Task WaitForTokenAsync(int tokenIndex, CancellationToken cancellationToken)
    {
        var wait = DueTime(tokenIndex) - timeProvider.GetElapsedTime(startTimestamp);
        if (wait <= TimeSpan.Zero)
        {
            return Task.CompletedTask;
        }

        // Timers count whole milliseconds on a coarse tick (about 4 ms on Linux), so rounding up keeps a token
        // from leaving more than a tick early; one timer per token is worth more than a sub-tick precision.
        var milliseconds = Math.Ceiling(wait.TotalMilliseconds);
        return Task.Delay(TimeSpan.FromMilliseconds(milliseconds), timeProvider, cancellationToken);
    }
}

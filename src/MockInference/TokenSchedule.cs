namespace MockInference;

/// <summary>
/// When each token is due: token i at start + ttft + stalls + i / rate. Waiting for an absolute due time,
/// not sleeping 1/rate after each token, keeps the long-run rate exact whatever each write costs.
/// </summary>
internal sealed class TokenSchedule(TimeProvider timeProvider, long startTimestamp, MockKnobs knobs)
{
    private TimeSpan _stalls;

    /// <summary>Pushes every later token back by <paramref name="stall"/>.</summary>
    public void AddStall(TimeSpan stall) => _stalls += stall;

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
        return wait > TimeSpan.Zero ? Task.Delay(wait, timeProvider, cancellationToken) : Task.CompletedTask;
    }
}

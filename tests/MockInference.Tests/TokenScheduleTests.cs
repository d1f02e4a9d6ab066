using Microsoft.Extensions.Time.Testing;

namespace MockInference.Tests;

/// <summary>When each token is due, on a fake clock: the pacing and stall rules without waiting for real time.</summary>
public sealed class TokenScheduleTests
{
    [Fact]
    public void TokenI_IsDue_AtTtftPlusIOverRate()
    {
        var clock = new FakeTimeProvider();
        var schedule = new TokenSchedule(clock, clock.GetTimestamp(), new MockKnobs { TokensPerSecond = 100, Ttft = TimeSpan.FromMilliseconds(200) });

        Assert.Equal(TimeSpan.FromMilliseconds(200), schedule.DueTime(0));
        Assert.Equal(TimeSpan.FromMilliseconds(250), schedule.DueTime(5));
    }

    [Fact]
    public void Stall_PushesThatTokenAndEveryLaterOne_ByTheStall()
    {
        var clock = new FakeTimeProvider();
        var schedule = new TokenSchedule(clock, clock.GetTimestamp(), new MockKnobs { TokensPerSecond = 100, Ttft = TimeSpan.FromMilliseconds(200) });
        clock.Advance(schedule.DueTime(5));
        schedule.AddStall(5, TimeSpan.FromMilliseconds(600));

        Assert.Equal(TimeSpan.FromMilliseconds(850), schedule.DueTime(5));
        Assert.Equal(TimeSpan.FromMilliseconds(860), schedule.DueTime(6));
    }

    [Fact]
    public void Stall_OnAStreamRunningLate_IsSilentForItsFullLength_FromNow()
    {
        var clock = new FakeTimeProvider();
        var schedule = new TokenSchedule(clock, clock.GetTimestamp(), new MockKnobs { TokensPerSecond = 100, Ttft = TimeSpan.Zero });

        clock.Advance(TimeSpan.FromMilliseconds(300)); // token 5 was due at 50 ms: 250 ms late
        schedule.AddStall(5, TimeSpan.FromMilliseconds(600));

        Assert.Equal(TimeSpan.FromMilliseconds(900), schedule.DueTime(5));
    }

    [Fact]
    public async Task WaitForToken_CompletesWhenTheFakeClockReachesItsDueTime_NotBefore()
    {
        var clock = new FakeTimeProvider();
        var schedule = new TokenSchedule(clock, clock.GetTimestamp(), new MockKnobs { TokensPerSecond = 10, Ttft = TimeSpan.Zero });

        Assert.True(schedule.WaitForTokenAsync(0, CancellationToken.None).IsCompleted);
        var second = schedule.WaitForTokenAsync(1, CancellationToken.None);
        clock.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(second.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        await second;
    }
}

using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Auth;

namespace Relay.IntegrationTests;

/// <summary>The in-memory ticket store enforces its own expiry and forgets expired tickets promptly.</summary>
public sealed class TicketStoreTests
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ExpiredTickets_AreDroppedWithinASweepInterval_WithoutWaitingForNewTickets()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var store = new InMemoryTicketStore(time);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await store.AddAsync(Ticket(time.GetUtcNow() + Lifetime), default));
        }

        time.Advance(Lifetime - TimeSpan.FromSeconds(1));
        Assert.Equal(3, store.Count); // Control: alive until their expiry.
        time.Advance(TimeSpan.FromSeconds(1) + InMemoryTicketStore.SweepInterval);
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public async Task AnExpiredTicket_IsRefusedAtRedemption_EvenBeforeASweep()
    {
        var time = new UnsweptClock(DateTimeOffset.UtcNow);
        using var store = new InMemoryTicketStore(time);
        var ticket = Ticket(time.Now + Lifetime);
        await store.AddAsync(ticket, default);

        time.Now += Lifetime;
        var redemption = await store.RedeemAsync(ticket.Id, default);
        Assert.Equal(TicketRedemptionStatus.Expired, redemption.Status);
        Assert.Null(redemption.Ticket);
    }

    [Fact]
    public async Task ATicket_IsRedeemedOnce_ThenUsed_AndAnIdNeverIssuedIsUnknown()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var store = new InMemoryTicketStore(time);
        var ticket = Ticket(time.GetUtcNow() + Lifetime);
        await store.AddAsync(ticket, default);

        Assert.Same(ticket, (await store.RedeemAsync(ticket.Id, default)).Ticket);
        Assert.Equal(TicketRedemptionStatus.AlreadyUsed, (await store.RedeemAsync(ticket.Id, default)).Status);
        Assert.Equal(TicketRedemptionStatus.Unknown, (await store.RedeemAsync(StreamTicketId(), default)).Status);
    }

    private static StreamTicket Ticket(DateTimeOffset expiresAt)
        => new(StreamTicketId(), "default", "/v1/chat/completions", "{}"u8.ToArray(), [], null, expiresAt);

    private static string StreamTicketId() => Guid.NewGuid().ToString("N");

    /// <summary>A clock the test moves, whose timers never fire: the store's sweep stays out of the way.</summary>
    private sealed class UnsweptClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new NeverFires();

        private sealed class NeverFires : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}

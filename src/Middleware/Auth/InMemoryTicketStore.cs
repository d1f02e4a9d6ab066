using System.Collections.Concurrent;

namespace Relay.Middleware.Auth;

/// <summary>
/// Tickets of one instance, in memory, bounded: a timer drops expired tickets every second, and a full store refuses
/// new tickets rather than grow without limit. A redeemed ticket gives up its body and credential at once; its id is
/// kept until its expiry, so that a second redemption is told "used" rather than "unknown".
/// </summary>
internal sealed class InMemoryTicketStore : ITicketStore, IDisposable
{
    /// <summary>The most tickets held at once.</summary>
    public const int Capacity = 100_000;

    /// <summary>How often expired tickets are dropped.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Entry> _tickets = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ITimer _sweep;

    /// <summary>Creates the store.</summary>
    public InMemoryTicketStore(TimeProvider time)
    {
        _time = time;
        _sweep = time.CreateTimer(static s => ((InMemoryTicketStore)s!).Sweep(), this, SweepInterval, SweepInterval);
    }

    /// <summary>Tickets held now, until they expire: the ids of redeemed ones included, not their content.</summary>
    public int Count => _tickets.Count;

    /// <inheritdoc />
    public ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (_tickets.Count >= Capacity)
        {
            Sweep();
        }

        return ValueTask.FromResult(_tickets.Count < Capacity && _tickets.TryAdd(ticket.Id, new Entry(ticket)));
    }

    /// <inheritdoc />
    public ValueTask<TicketRedemption> RedeemAsync(string id, CancellationToken cancellationToken)
    {
        if (!_tickets.TryGetValue(id, out var entry))
        {
            return ValueTask.FromResult(TicketRedemption.Refused(TicketRedemptionStatus.Unknown));
        }

        // The expiry stored at issue decides, not the one in the presented string: with the signing key, a ticket
        // string can be re-signed with any expiry.
        if (entry.ExpiresAt <= _time.GetUtcNow())
        {
            _tickets.TryRemove(KeyValuePair.Create(id, entry));
            return ValueTask.FromResult(TicketRedemption.Refused(TicketRedemptionStatus.Expired));
        }

        if (Interlocked.Exchange(ref entry.Redeemed, 1) != 0)
        {
            return ValueTask.FromResult(TicketRedemption.Refused(TicketRedemptionStatus.AlreadyUsed));
        }

        var ticket = entry.Ticket!;
        entry.Ticket = null;
        return ValueTask.FromResult(TicketRedemption.Redeemed(ticket));
    }

    /// <summary>Stops the sweep timer.</summary>
    public void Dispose() => _sweep.Dispose();

    private void Sweep()
    {
        var now = _time.GetUtcNow();
        foreach (var (id, entry) in _tickets)
        {
            if (entry.ExpiresAt <= now)
            {
                _tickets.TryRemove(KeyValuePair.Create(id, entry));
            }
        }
    }

    private sealed class Entry(StreamTicket ticket)
    {
        public readonly DateTimeOffset ExpiresAt = ticket.ExpiresAt;

        // Only the redemption that wins the exchange below reads it, then lets it go.
        public StreamTicket? Ticket = ticket;

        public int Redeemed;
    }
}

using System.Collections.Concurrent;

namespace Relay.Middleware.Auth;

/// <summary>
/// Tickets of one instance, in memory, bounded: expired tickets are swept as new ones arrive, and a full store
/// refuses new tickets rather than grow without limit.
/// </summary>
public sealed class InMemoryTicketStore : ITicketStore
{
    /// <summary>The most tickets held at once.</summary>
    public const int Capacity = 100_000;

    private readonly ConcurrentDictionary<string, StreamTicket> _tickets = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private int _addsSinceSweep;

    /// <summary>Creates the store.</summary>
    public InMemoryTicketStore(TimeProvider time) => _time = time;

    /// <summary>Tickets held now (redeemed ones are gone).</summary>
    public int Count => _tickets.Count;

    /// <inheritdoc />
    public ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (Interlocked.Increment(ref _addsSinceSweep) >= 1024 || _tickets.Count >= Capacity)
        {
            Volatile.Write(ref _addsSinceSweep, 0);
            var now = _time.GetUtcNow();
            foreach (var (id, held) in _tickets)
            {
                if (held.ExpiresAt <= now)
                {
                    _tickets.TryRemove(id, out _);
                }
            }
        }

        return ValueTask.FromResult(_tickets.Count < Capacity && _tickets.TryAdd(ticket.Id, ticket));
    }

    /// <inheritdoc />
    public ValueTask<StreamTicket?> TryRedeemAsync(string id, CancellationToken cancellationToken)
        => ValueTask.FromResult(_tickets.TryRemove(id, out var ticket) ? ticket : null);
}

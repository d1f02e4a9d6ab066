using Relay.Middleware.Auth;
using StackExchange.Redis;

namespace Relay.Middleware.State;

/// <summary>
/// Tickets shared by every instance, in Redis (<c>Relay:State:Redis</c>). A ticket is one key whose value is the sealed
/// request and credential (<see cref="TicketCipher"/>) and whose TTL is the ticket's lifetime, so Redis enforces the
/// expiry recorded at issue. Redemption is an atomic take (<c>GETDEL</c>, in a script that also leaves a marker for the
/// ticket's remaining lifetime): of two instances presented the same ticket, one gets it and the other is told "used". Redis unreachable: <see cref="StateStoreUnavailableException"/>.
/// </summary>
internal sealed class RedisTicketStore(RedisState redis, TicketCipher cipher, TimeProvider time) : ITicketStore
{
    private const string Prefix = "relay:ticket:";

    // The take: GETDEL, and in the same atomic step a "used" marker for the ticket's remaining lifetime, so that a
    // presentation racing this one (on another instance) is told "used", never "unknown". Returns the sealed ticket,
    // or 1 (used) / 0 (unknown or expired).
    private const string TakeScript = """
        local ttl = redis.call('PTTL', KEYS[1])
        local v = redis.call('GETDEL', KEYS[1])
        if v then
          if ttl > 0 then redis.call('SET', KEYS[2], '1', 'PX', ttl) end
          return v
        end
        return redis.call('EXISTS', KEYS[2])
        """;

    public async ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        var lifetime = ticket.ExpiresAt - time.GetUtcNow();
        if (lifetime <= TimeSpan.Zero)
        {
            return true; // Expired on arrival: storing nothing redeems as unknown, as Redis would after the TTL.
        }

        var value = cipher.Seal(ticket);
        return await redis.RunAsync(static (db, s) => db.StringSetAsync(Key(s.Id), s.Value, s.Lifetime, When.NotExists), (ticket.Id, Value: value, Lifetime: lifetime))
            .ConfigureAwait(false);
    }

    public async ValueTask<TicketRedemption> RedeemAsync(string id, CancellationToken cancellationToken)
    {
        var taken = await redis.RunAsync(static (db, id) => db.ScriptEvaluateAsync(TakeScript, [Key(id), UsedKey(id)]), id).ConfigureAwait(false);
        if (taken.Resp2Type != ResultType.BulkString || taken.IsNull)
        {
            return TicketRedemption.Refused((long)taken == 1 ? TicketRedemptionStatus.AlreadyUsed : TicketRedemptionStatus.Unknown);
        }

        var value = (byte[])taken!;
        var ticket = cipher.Open(id, value);
        if (ticket is null)
        {
            // Sealed under another key (instances with different Tickets:EncryptionKey) or altered in Redis.
            return TicketRedemption.Refused(TicketRedemptionStatus.Unknown);
        }

        var remaining = ticket.ExpiresAt - time.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            return TicketRedemption.Refused(TicketRedemptionStatus.Expired);
        }

        return TicketRedemption.Redeemed(ticket);
    }

    // One hash tag per ticket: the ticket and its marker live in one cluster slot.
    private static RedisKey Key(string id) => $"{Prefix}{{{id}}}";

    private static RedisKey UsedKey(string id) => $"{Prefix}{{{id}}}:used";
}

namespace Relay.Middleware.Auth;

/// <summary>
/// Holds issued stream tickets until they are redeemed or expire. Redemption is atomic: a ticket is redeemed at
/// most once. The store enforces the expiry it stored (<see cref="StreamTicket.ExpiresAt"/>) itself: a ticket
/// string re-signed with a later expiry must not extend it. The in-memory store serves one instance; several
/// instances behind a load balancer need a shared store (and a shared <c>Relay:Tickets:SigningKey</c>).
/// </summary>
public interface ITicketStore
{
    /// <summary>Stores a ticket. False when the store is full (the client gets a 503).</summary>
    ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken);

    /// <summary>
    /// Takes the ticket for its one stream, or says why not: redeemed already (remembered at least until its expiry),
    /// expired by the stored expiry, or unknown (never issued here, or lost in a restart).
    /// </summary>
    ValueTask<TicketRedemption> RedeemAsync(string id, CancellationToken cancellationToken);
}

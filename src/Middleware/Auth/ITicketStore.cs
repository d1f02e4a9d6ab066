namespace Relay.Middleware.Auth;

/// <summary>
/// Holds issued stream tickets until they are redeemed or expire. Redemption is atomic: a ticket is returned at
/// most once. The in-memory store serves one instance; several instances behind a load balancer need a shared
/// store (and a shared <c>Relay:Tickets:SigningKey</c>).
/// </summary>
public interface ITicketStore
{
    /// <summary>Stores a ticket. False when the store is full (the client gets a 503).</summary>
    ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken);

    /// <summary>Removes and returns the ticket, or null when it was redeemed already (or never issued here).</summary>
    ValueTask<StreamTicket?> TryRedeemAsync(string id, CancellationToken cancellationToken);
}

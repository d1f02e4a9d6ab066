namespace Relay.Middleware.Auth;

/// <summary>What a ticket store says when a ticket is presented.</summary>
public enum TicketRedemptionStatus
{
    /// <summary>The ticket was held and is now taken: this request starts its stream.</summary>
    Redeemed,

    /// <summary>The ticket started its stream already (410 <c>ticket_used</c>).</summary>
    AlreadyUsed,

    /// <summary>The store's own record of the ticket says it expired, whatever the ticket string says (401 <c>ticket_expired</c>).</summary>
    Expired,

    /// <summary>The store never issued the ticket, or no longer knows it (a restart): 401 <c>invalid_ticket</c>.</summary>
    Unknown,
}

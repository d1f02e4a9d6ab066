namespace Relay.Middleware.Auth;

/// <summary>The outcome of presenting a ticket to an <see cref="ITicketStore"/>.</summary>
/// <param name="Status">What the store says.</param>
/// <param name="Ticket">The ticket, when <see cref="TicketRedemptionStatus.Redeemed"/>; otherwise null.</param>
public readonly record struct TicketRedemption(TicketRedemptionStatus Status, StreamTicket? Ticket)
{
    /// <summary>A ticket taken for its one stream.</summary>
    public static TicketRedemption Redeemed(StreamTicket ticket) => new(TicketRedemptionStatus.Redeemed, ticket);

    /// <summary>A refusal.</summary>
    public static TicketRedemption Refused(TicketRedemptionStatus status) => new(status, null);
}

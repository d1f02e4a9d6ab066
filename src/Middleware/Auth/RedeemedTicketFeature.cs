namespace Relay.Middleware.Auth;

/// <summary>The request is the redemption of a stream ticket; <see cref="RelayAuthenticator"/> authenticates it with the ticket's credential.</summary>
internal sealed class RedeemedTicketFeature(StreamTicket ticket)
{
    public StreamTicket Ticket { get; } = ticket;
}

/// <summary>The request asks for a stream ticket (<c>POST /relay/v1/tickets</c>): it is authenticated and validated like the chat request it carries, then answered with a ticket instead of being forwarded.</summary>
internal sealed class TicketIssueFeature
{
    public static readonly TicketIssueFeature Instance = new();
}

namespace Relay.Middleware.Auth;

/// <summary>Where a client's credential came from.</summary>
public enum CredentialSource
{
    /// <summary>The <c>Authorization</c> header.</summary>
    AuthorizationHeader,

    /// <summary>The <c>access_token</c> query parameter (RFC 6750, section 2.3) or its configured alias.</summary>
    QueryString,

    /// <summary>A one-time stream ticket: the credential presented when the ticket was issued.</summary>
    Ticket,
}

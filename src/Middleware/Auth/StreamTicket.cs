namespace Relay.Middleware.Auth;

/// <summary>
/// What a one-time stream ticket stands for, kept server-side in an <see cref="ITicketStore"/>: the request that
/// was posted, the route it is bound to, and the credential that authorized it. The ticket in the URL only names
/// it (with a signature and an expiry), so no long-lived key ever sits in a URL.
/// </summary>
/// <param name="Id">The ticket id (random, 128 bits, base64url).</param>
/// <param name="RouteId">The route the ticket was issued on; redemption on another route fails.</param>
/// <param name="Path">The chat-completions path the stream is requested on.</param>
/// <param name="Body">The request body as the client posted it.</param>
/// <param name="Headers">The client's request headers worth replaying (no credentials, no hop-by-hop headers).</param>
/// <param name="Credential">The credential presented at issuance (a shared store must encrypt it).</param>
/// <param name="ExpiresAt">When the ticket expires.</param>
public sealed record StreamTicket(
    string Id,
    string? RouteId,
    string Path,
    ReadOnlyMemory<byte> Body,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    PresentedCredential? Credential,
    DateTimeOffset ExpiresAt);

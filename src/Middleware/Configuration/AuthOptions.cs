namespace Relay.Middleware.Configuration;

/// <summary>Authentication of one route (every property can be overridden per route).</summary>
public sealed class AuthOptions
{
    /// <summary>Relay keys or pass-through of the client's <c>Authorization</c>. Default pass-through.</summary>
    public RelayAuthMode Mode { get; set; } = RelayAuthMode.PassThrough;

    /// <summary>
    /// In <see cref="RelayAuthMode.RelayKeys"/> mode, the upstream credential Relay sends as
    /// <c>Authorization: Bearer ...</c>. Empty: no <c>Authorization</c> goes upstream (a local server without keys).
    /// Keep it out of files: set it with an environment variable or a secret store.
    /// </summary>
    public string? UpstreamApiKey { get; set; }

    /// <summary>
    /// Accept the credential as the query parameter <c>access_token</c> (RFC 6750, section 2.3) for clients that
    /// cannot set headers (browser <c>EventSource</c>, <c>WebSocket</c>). The parameter becomes the
    /// <c>Authorization</c> header and is removed from the forwarded URL and from logged URLs. Default off.
    /// </summary>
    public bool QueryToken { get; set; }

    /// <summary>
    /// A second accepted name for the query token (for example <c>api_key</c>). Global: the name is removed from
    /// every request's URL before anything logs it, which happens before a route is known.
    /// </summary>
    public string? QueryTokenAlias { get; set; }
}

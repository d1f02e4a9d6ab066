namespace Relay.Middleware.Auth;

/// <summary>
/// Query-string credentials taken out of a request's URL before anything logged it (see
/// <see cref="QueryTokenRedactingServer"/>), for <see cref="RelayAuthenticator"/>. They never go back into a URL:
/// neither the request's own, which the host logs when the request finishes, nor the upstream's.
/// </summary>
internal sealed class QueryCredentialFeature(List<KeyValuePair<string, string>> tokens)
{
    public List<KeyValuePair<string, string>> Tokens { get; } = tokens;
}

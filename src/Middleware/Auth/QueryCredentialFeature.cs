namespace Relay.Middleware.Auth;

/// <summary>
/// Query-string credentials taken out of a request's URL before anything logged it (see
/// <see cref="QueryTokenRedactingServer"/>), with the query as the client sent it, for routes that do not accept
/// query tokens and so forward it unchanged.
/// </summary>
internal sealed class QueryCredentialFeature(string originalQuery, List<KeyValuePair<string, string>> tokens)
{
    public string OriginalQuery { get; } = originalQuery;

    public List<KeyValuePair<string, string>> Tokens { get; } = tokens;
}

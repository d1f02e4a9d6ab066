namespace Relay.Middleware.Auth;

/// <summary>
/// The query-string token (RFC 6750, section 2.3: "the client uses the URI Query Parameter defined below";
/// <c>access_token</c>) and its configured alias: finding them and removing them from a raw query string.
/// </summary>
internal static class QueryTokens
{
    /// <summary>The RFC 6750 parameter name.</summary>
    public const string AccessToken = "access_token";

    /// <summary>
    /// Removes every <c>access_token</c> (and <paramref name="alias"/>) parameter from <paramref name="query"/>
    /// (<c>?a=1&amp;access_token=x</c>), adding their decoded values to <paramref name="found"/>. A name matches after
    /// percent-decoding and whatever its case (<c>access%5Ftoken</c>, <c>Access_Token</c>): a server that decodes
    /// names or ignores their case would take any of them as the credential, so every spelling is one. Other
    /// parameters keep their exact encoding and order. Returns the query unchanged (same instance) when there is none.
    /// </summary>
    public static string Strip(string query, string? alias, List<KeyValuePair<string, string>> found)
    {
        // Cheap pre-check on the hot path: an encoded name can hide behind any '%'.
        if (query.Length < 2
            || !(query.Contains('%') || Contains(query, AccessToken) || (!string.IsNullOrEmpty(alias) && Contains(query, alias))))
        {
            return query;
        }

        var kept = new List<string>();
        var removed = false;
        foreach (var pair in query.AsSpan(1).ToString().Split('&'))
        {
            var eq = pair.IndexOf('=');
            var name = Decode(eq < 0 ? pair : pair[..eq]);
            if (string.Equals(name, AccessToken, StringComparison.OrdinalIgnoreCase)
                || (!string.IsNullOrEmpty(alias) && string.Equals(name, alias, StringComparison.OrdinalIgnoreCase)))
            {
                found.Add(KeyValuePair.Create(name, eq < 0 ? "" : Decode(pair[(eq + 1)..])));
                removed = true;
            }
            else if (pair.Length > 0)
            {
                kept.Add(pair);
            }
        }

        return !removed ? query : kept.Count == 0 ? "" : "?" + string.Join('&', kept);
    }

    private static bool Contains(string query, string name) => query.Contains(name, StringComparison.OrdinalIgnoreCase);

    // application/x-www-form-urlencoded: '+' is a space.
    private static string Decode(string value) => Uri.UnescapeDataString(value.Replace('+', ' '));
}

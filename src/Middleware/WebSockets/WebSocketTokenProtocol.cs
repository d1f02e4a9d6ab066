using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The browser form of a bearer token for WebSockets: browsers cannot set headers on a WebSocket, so, as OpenAI's
/// realtime API does, the token travels as a subprotocol <c>openai-insecure-api-key.&lt;token&gt;</c> next to the
/// protocol's name (<c>new WebSocket(url, ["relay.v1", "openai-insecure-api-key." + key])</c>). Relay turns it into
/// the request's <c>Authorization: Bearer</c> header (which every response of the session then carries upstream) and
/// removes it from <c>Sec-WebSocket-Protocol</c>, so that only the protocol name is ever echoed, logged or forwarded.
/// </summary>
/// <remarks>
/// A token source in its own right (next to the header, the query token and the ticket): it runs before any
/// authentication reads <c>Authorization</c>. A subprotocol is an RFC 7230 token, so a key with characters outside
/// that set (base64 <c>/</c>, <c>+</c>, <c>=</c>) cannot be sent this way; base64url keys can.
/// </remarks>
internal static class WebSocketTokenProtocol
{
    /// <summary>The prefix of the subprotocol that carries the token (OpenAI's name, so OpenAI's browser snippets work).</summary>
    public const string Prefix = "openai-insecure-api-key.";

    /// <summary>
    /// Moves a token offered as a subprotocol into <c>Authorization</c> (unless the request already has that header,
    /// which then wins) and strips it from <c>Sec-WebSocket-Protocol</c>. Returns whether a token was found.
    /// </summary>
    public static bool Apply(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.Headers.TryGetValue(HeaderNames.SecWebSocketProtocol, out var offered))
        {
            return false;
        }

        string? token = null;
        var kept = new List<string>();
        foreach (var value in offered)
        {
            foreach (var protocol in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (protocol.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
                {
                    token ??= protocol[Prefix.Length..];
                }
                else
                {
                    kept.Add(protocol);
                }
            }
        }

        if (token is null)
        {
            return false;
        }

        if (kept.Count == 0)
        {
            request.Headers.Remove(HeaderNames.SecWebSocketProtocol);
        }
        else
        {
            request.Headers[HeaderNames.SecWebSocketProtocol] = new StringValues(string.Join(", ", kept));
        }

        if (token.Length > 0 && StringValues.IsNullOrEmpty(request.Headers.Authorization))
        {
            request.Headers.Authorization = "Bearer " + token;
        }

        return true;
    }
}

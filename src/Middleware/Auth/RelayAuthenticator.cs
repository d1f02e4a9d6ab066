using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;

namespace Relay.Middleware.Auth;

/// <summary>
/// Resolves who the caller of a route is (docs/design.md, step 3) from the <c>Authorization</c> header, the
/// <c>access_token</c> query parameter, or a redeemed stream ticket, and prepares the upstream request: in
/// pass-through mode the client's credential goes upstream as <c>Authorization</c>; in relay-keys mode the Relay
/// key is checked and replaced by the route's upstream key. No secret reaches a log or the upstream URL.
/// </summary>
internal sealed partial class RelayAuthenticator
{
    private readonly IOptionsMonitor<RelayOptions> _options;
    private readonly ILogger _logger;
    private RelayKeyRing? _keys;

    /// <summary>Creates the authenticator.</summary>
    public RelayAuthenticator(IOptionsMonitor<RelayOptions> options, ILogger<RelayAuthenticator> logger)
    {
        _options = options;
        _logger = logger;
        options.OnChange(_ => _keys = null);
    }

    /// <summary>
    /// Authenticates the request for <paramref name="route"/> and rewrites its credentials for the upstream.
    /// Returns null when the request may go on, or the error to answer with (the upstream is then not called).
    /// </summary>
    public ValueTask<AuthFailure?> AuthenticateAsync(HttpContext context, RouteSettings route)
        => ValueTask.FromResult(Authenticate(context, route));

    private AuthFailure? Authenticate(HttpContext context, RouteSettings route)
    {
        var auth = route.Auth;
        var ticket = context.Features.Get<RedeemedTicketFeature>()?.Ticket;
        if (ticket is not null && !string.Equals(ticket.RouteId, route.RouteId, StringComparison.Ordinal))
        {
            return AuthFailure.Unauthorized("The stream ticket was issued for another route.", "ticket_route_mismatch");
        }

        var queryTokens = TakeQueryTokens(context, auth);
        if (queryTokens.Count > 0 && !auth.QueryToken)
        {
            // Relay took the parameter out of the URL before anything logged it, and forwards no credential in a URL;
            // dropping it silently would leave the client with the upstream's puzzling "no API key".
            Log.Rejected(_logger, route.RouteId, "query_token_not_accepted");
            return AuthFailure.BadRequest(
                "This route does not accept a credential in the query string; send it as Authorization: Bearer <key>.", "query_token_not_accepted");
        }

        if (!TryGetPresentedCredential(context, ticket, queryTokens, out var credential, out var failure))
        {
            return failure;
        }

        var headers = context.Request.Headers;
        if (auth.Mode == RelayAuthMode.PassThrough)
        {
            if (credential is { Source: not CredentialSource.AuthorizationHeader })
            {
                headers.Authorization = credential.AuthorizationValue;
            }

            context.Features.Set(new RelayCredentialFeature(credential, null));
            return null;
        }

        if (credential is null)
        {
            Log.Rejected(_logger, route.RouteId, "missing_api_key");
            return AuthFailure.Unauthorized(
                "You didn't provide an API key. Send it as Authorization: Bearer <key>" + (auth.QueryToken ? " or as the access_token query parameter." : "."),
                "missing_api_key");
        }

        var keys = _keys ??= new RelayKeyRing(_options.CurrentValue.RelayKeys);
        var key = keys.Find(credential.Token);
        if (key is null)
        {
            Log.Rejected(_logger, route.RouteId, "invalid_api_key");
            return AuthFailure.Unauthorized("Incorrect API key provided.", "invalid_api_key");
        }

        if (key.Routes.Count > 0 && !key.Routes.Contains(route.RouteId ?? "", StringComparer.Ordinal))
        {
            Log.Rejected(_logger, route.RouteId, "route_not_allowed");
            return new AuthFailure(StatusCodes.Status403Forbidden, "This API key may not call this route.", RelayErrorTypes.Authentication, "route_not_allowed");
        }

        // The client's key stays here; the upstream sees the route's own credential, which no client ever sees.
        if (string.IsNullOrEmpty(auth.UpstreamApiKey))
        {
            headers.Remove(HeaderNames.Authorization);
        }
        else
        {
            headers.Authorization = "Bearer " + auth.UpstreamApiKey;
        }

        context.Features.Set(new RelayCredentialFeature(credential, key.Name));
        Log.Authenticated(_logger, key.Name, route.RouteId, credential.Source);
        return null;
    }

    /// <summary>
    /// Every credential the request carries, one source after another. A new source (a WebSocket subprotocol token,
    /// say) is one more block here; <see cref="TryGetPresentedCredential"/> enforces that all sources agree.
    /// </summary>
    internal static IEnumerable<PresentedCredential> PresentedCredentials(HttpContext context, StreamTicket? ticket, List<KeyValuePair<string, string>> queryTokens)
    {
        if (ticket?.Credential is { } fromTicket)
        {
            yield return fromTicket with { Source = CredentialSource.Ticket };
        }

        if (context.Request.Headers.Authorization is { Count: > 0 } header && header.ToString() is { Length: > 0 } value)
        {
            // RFC 6750, section 2.1: credentials = "Bearer" 1*SP b64token. Another scheme passes through as it is.
            var token = value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? value[7..].Trim() : value;
            yield return new PresentedCredential(token, value, CredentialSource.AuthorizationHeader);
        }

        foreach (var (_, token) in queryTokens)
        {
            yield return new PresentedCredential(token, "Bearer " + token, CredentialSource.QueryString);
        }
    }

    /// <summary>
    /// The request's credential: none, or one value however many sources carry it. Different values (a header and a
    /// different query token) are rejected: which one should win is a guess, and a wrong guess bills the wrong key.
    /// </summary>
    internal static bool TryGetPresentedCredential(HttpContext context, StreamTicket? ticket, List<KeyValuePair<string, string>> queryTokens,
        out PresentedCredential? credential, out AuthFailure? failure)
    {
        credential = null;
        failure = null;
        foreach (var candidate in PresentedCredentials(context, ticket, queryTokens))
        {
            if (candidate.Token.Length == 0)
            {
                failure = AuthFailure.Unauthorized($"The credential in the {Describe(candidate.Source)} is empty.", "invalid_api_key");
                return false;
            }

            if (credential is null)
            {
                credential = candidate;
            }
            else if (!string.Equals(credential.Token, candidate.Token, StringComparison.Ordinal))
            {
                failure = AuthFailure.BadRequest(
                    $"The request carries different credentials in the {Describe(credential.Source)} and the {Describe(candidate.Source)}; send one.",
                    "conflicting_credentials");
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The query tokens of this request, removed from the URL that is forwarded, on every route: a credential never
    /// goes upstream in a URL, where the upstream's access logs (and YARP's debug log of the upstream URL) would keep it.
    /// </summary>
    private static List<KeyValuePair<string, string>> TakeQueryTokens(HttpContext context, AuthOptions auth)
    {
        var request = context.Request;
        var tokens = context.Features.Get<QueryCredentialFeature>()?.Tokens ?? [];
        // Without the server decorator (a host that registers its server after AddRelay), or for a route-level
        // alias, the tokens are still in the URL: take them out before YARP builds the upstream URL.
        var found = new List<KeyValuePair<string, string>>();
        var stripped = QueryTokens.Strip(request.QueryString.Value ?? "", auth.QueryTokenAlias, found);
        if (found.Count > 0)
        {
            request.QueryString = new QueryString(stripped.Length == 0 ? null : stripped);
            tokens = [.. tokens, .. found];
        }

        return tokens;
    }

    private static string Describe(CredentialSource source) => source switch
    {
        CredentialSource.AuthorizationHeader => "Authorization header",
        CredentialSource.QueryString => "query string",
        _ => "stream ticket",
    };

    private static partial class Log
    {
        [LoggerMessage(400, LogLevel.Debug, "Relay key {KeyName} authenticated for route {RouteId} (from the {Source}).", EventName = "Authenticated")]
        public static partial void Authenticated(ILogger logger, string keyName, string? routeId, CredentialSource source);

        [LoggerMessage(401, LogLevel.Information, "A request to route {RouteId} was rejected: {Code}.", EventName = "AuthenticationRejected")]
        public static partial void Rejected(ILogger logger, string? routeId, string code);
    }
}

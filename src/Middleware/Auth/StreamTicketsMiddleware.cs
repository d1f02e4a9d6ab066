using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;

namespace Relay.Middleware.Auth;

/// <summary>
/// The two ticket URLs, turned into the chat request they stand for BEFORE routing, so that both go through the
/// route's own proxy pipeline (authentication, body checks, transforms, timeouts, accounting) instead of a copy of it:
/// <list type="bullet">
/// <item><c>POST /relay/v1/tickets</c> (and its CORS preflight) becomes a request on the chat-completions path
/// (<c>?path=</c> or <c>Relay:Tickets:ChatCompletionsPath</c>), marked so Relay answers it with a ticket.</item>
/// <item><c>GET /relay/v1/streams/{ticket}</c> (what <c>EventSource</c> sends) is verified, redeemed once, and
/// becomes the POST that was issued, with its body, bound to its route.</item>
/// </list>
/// </summary>
internal sealed partial class StreamTicketsMiddleware
{
    public const string TicketsPath = "/relay/v1/tickets";
    public const string StreamsPath = "/relay/v1/streams";
    private const string ChatCompletionsSuffix = "/chat/completions";

    private static readonly AuthFailure Invalid = AuthFailure.Unauthorized("The stream ticket is not valid.", "invalid_ticket");
    private static readonly AuthFailure Expired = AuthFailure.Unauthorized("The stream ticket has expired; request a new one.", "ticket_expired");

    private readonly RequestDelegate _next;
    private readonly IOptionsMonitor<RelayOptions> _options;
    private readonly StreamTicketSigner _signer;
    private readonly ITicketStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public StreamTicketsMiddleware(RequestDelegate next, IOptionsMonitor<RelayOptions> options, StreamTicketSigner signer, ITicketStore store, TimeProvider time, ILogger<StreamTicketsMiddleware> logger)
    {
        _next = next;
        _options = options;
        _signer = signer;
        _store = store;
        _time = time;
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!_options.CurrentValue.Tickets.Enabled)
        {
            return _next(context);
        }

        if (request.Path.Equals(TicketsPath, StringComparison.OrdinalIgnoreCase)
            && (HttpMethods.IsPost(request.Method) || HttpMethods.IsOptions(request.Method)))
        {
            return RewriteIssueAsync(context);
        }

        if (HttpMethods.IsGet(request.Method) && request.Path.StartsWithSegments(StreamsPath, StringComparison.OrdinalIgnoreCase, out var rest)
            && rest.Value is { Length: > 1 } ticket)
        {
            return RedeemAsync(context, ticket[1..]);
        }

        return _next(context);
    }

    private Task RewriteIssueAsync(HttpContext context)
    {
        var request = context.Request;
        var target = _options.CurrentValue.Tickets.ChatCompletionsPath;
        if (request.Query.TryGetValue("path", out var named))
        {
            target = named.ToString();
            request.QueryString = QueryString.Empty;
        }

        if (!target.StartsWith('/') || !target.EndsWith(ChatCompletionsSuffix, StringComparison.OrdinalIgnoreCase) || target.Contains("..", StringComparison.Ordinal))
        {
            return AuthFailure.BadRequest($"A stream ticket is issued for a chat-completions path (ending in {ChatCompletionsSuffix}).", "invalid_ticket_path")
                .WriteAsync(context);
        }

        request.Path = target;
        if (HttpMethods.IsPost(request.Method))
        {
            context.Features.Set(TicketIssueFeature.Instance);
        }

        return _next(context);
    }

    private async Task RedeemAsync(HttpContext context, string token)
    {
        if (!_signer.TryVerify(token, out var id, out var routeId, out var expiresAt))
        {
            Log.Refused(_logger, Invalid.Code);
            await Invalid.WriteAsync(context);
            return;
        }

        if (_time.GetUtcNow() >= expiresAt)
        {
            Log.Refused(_logger, Expired.Code);
            await Expired.WriteAsync(context);
            return;
        }

        TicketRedemption redemption;
        try
        {
            redemption = await _store.RedeemAsync(id, context.RequestAborted);
        }
        catch (State.StateStoreUnavailableException)
        {
            // A shared store (Redis) that is down.
            await State.StateStoreUnavailable.WriteAsync(context);
            return;
        }
        var ticket = redemption.Ticket;
        var refusal = redemption.Status switch
        {
            TicketRedemptionStatus.AlreadyUsed => new AuthFailure(StatusCodes.Status410Gone,
                "The stream ticket was used already; a ticket starts one stream.", RelayErrorTypes.InvalidRequest, "ticket_used"),
            // The store's own expiry: the signed one above can be re-signed by whoever holds the key.
            TicketRedemptionStatus.Expired => Expired,
            // Never issued here, or lost in a restart: not "used", which would send a client looking for a stream it never had.
            TicketRedemptionStatus.Unknown => Invalid,
            _ when ticket is null || !string.Equals(ticket.RouteId ?? "", routeId, StringComparison.Ordinal) => Invalid,
            _ when _time.GetUtcNow() >= ticket.ExpiresAt => Expired,
            _ => null,
        };
        if (refusal is not null || ticket is null)
        {
            refusal ??= Invalid;
            Log.Refused(_logger, refusal.Code);
            await refusal.WriteAsync(context);
            return;
        }

        // From here on this is the POST that was issued: same path, body and headers, bound to its route.
        var request = context.Request;
        request.Method = HttpMethods.Post;
        request.Path = ticket.Path;
        request.QueryString = QueryString.Empty;
        foreach (var (name, value) in ticket.Headers)
        {
            request.Headers.TryAdd(name, value);
        }

        request.ContentType = "application/json";
        request.Body = new MemoryStream(ticket.Body.ToArray(), writable: false);
        request.ContentLength = ticket.Body.Length;
        context.Features.Set<IHttpRequestBodyDetectionFeature>(RequestHasBody.Instance);
        context.Features.Set(new RedeemedTicketFeature(ticket));
        await _next(context);
    }

    /// <summary>The headers of the issuing request that the stream replays: no credentials, cookies or framing.</summary>
    internal static IReadOnlyList<KeyValuePair<string, string>> ReplayableHeaders(IHeaderDictionary headers)
    {
        var kept = new List<KeyValuePair<string, string>>();
        foreach (var (name, value) in headers)
        {
            var replay = name.StartsWith("x-", StringComparison.OrdinalIgnoreCase) || name.StartsWith("openai-", StringComparison.OrdinalIgnoreCase)
                || name.Equals("Relay-Timeout", StringComparison.OrdinalIgnoreCase);
            // x-api-key, x-auth-token, x-session-secret, ...: anything that may carry a credential stays behind.
            var secret = name.EndsWith("key", StringComparison.OrdinalIgnoreCase) || name.EndsWith("token", StringComparison.OrdinalIgnoreCase)
                || name.Contains("auth", StringComparison.OrdinalIgnoreCase) || name.Contains("secret", StringComparison.OrdinalIgnoreCase)
                || name.Contains("password", StringComparison.OrdinalIgnoreCase) || name.Contains("cookie", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("x-forwarded", StringComparison.OrdinalIgnoreCase);
            if (replay && !secret)
            {
                kept.Add(KeyValuePair.Create(name, value.ToString()));
            }
        }

        return kept;
    }

    /// <summary>YARP forwards a body only when the server says the request can have one; a GET cannot, its rewrite can.</summary>
    private sealed class RequestHasBody : IHttpRequestBodyDetectionFeature
    {
        public static readonly RequestHasBody Instance = new();

        public bool CanHaveBody => true;
    }

    private static partial class Log
    {
        [LoggerMessage(410, LogLevel.Information, "A stream ticket was refused: {Code}.", EventName = "TicketRefused")]
        public static partial void Refused(ILogger logger, string code);
    }
}

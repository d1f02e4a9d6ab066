using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;
using Relay.Middleware.Requests;

namespace Relay.Middleware.Auth;

/// <summary>
/// Answers <c>POST /relay/v1/tickets</c> once the request has been authenticated and its body checked like any
/// chat request on the route: stores the request and its credential, and returns the one-time stream URL.
/// </summary>
internal sealed partial class StreamTicketIssuer(StreamTicketSigner signer, ITicketStore store, TimeProvider time, IOptionsMonitor<RelayOptions> options, ILogger<StreamTicketIssuer> logger)
{
    /// <summary>Whether the request asks for a ticket rather than a response.</summary>
    public static bool IsIssueRequest(HttpContext context) => context.Features.Get<TicketIssueFeature>() is not null;

    public async Task IssueAsync(HttpContext context, RelayRequestFeature feature)
    {
        if (!feature.IsChatCompletion || !feature.Stream)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status400BadRequest,
                "A stream ticket is for a streaming chat completion: set \"stream\": true.", RelayErrorTypes.InvalidRequest, "invalid_value");
            return;
        }

        var expiresAt = time.GetUtcNow().AddSeconds(options.CurrentValue.Tickets.LifetimeSeconds);
        var id = StreamTicketSigner.NewId();
        var ticket = new StreamTicket(id, feature.RouteId, context.Request.Path.Value!, feature.Body,
            StreamTicketsMiddleware.ReplayableHeaders(context.Request.Headers), context.Features.Get<RelayCredentialFeature>()?.Credential, expiresAt);
        bool added;
        try
        {
            added = await store.AddAsync(ticket, context.RequestAborted);
        }
        catch (State.StateStoreUnavailableException)
        {
            // A shared store (Redis) that is down.
            await State.StateStoreUnavailable.WriteAsync(context);
            return;
        }

        if (!added)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status503ServiceUnavailable,
                "Too many stream tickets are outstanding; try again shortly.", RelayErrorTypes.ServerError, "too_many_tickets", retryAfterSeconds: 1);
            return;
        }

        var url = $"{context.Request.PathBase}{StreamTicketsMiddleware.StreamsPath}/{signer.Sign(id, feature.RouteId, expiresAt)}";
        Log.Issued(logger, feature.RouteId, expiresAt);
        var body = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("url", url);
            json.WriteNumber("expires_at", expiresAt.ToUnixTimeSeconds());
            json.WriteEndObject();
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.Headers[HeaderNames.CacheControl] = "no-store";
        context.Response.ContentLength = body.WrittenCount;
        await context.Response.Body.WriteAsync(body.WrittenMemory, context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(411, LogLevel.Debug, "A stream ticket was issued for route {RouteId}, valid until {ExpiresAt}.", EventName = "TicketIssued")]
        public static partial void Issued(ILogger logger, string? routeId, DateTimeOffset expiresAt);
    }
}

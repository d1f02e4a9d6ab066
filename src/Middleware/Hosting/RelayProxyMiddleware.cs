using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Auth;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;
using Relay.Middleware.Requests;
using Relay.Middleware.ServerSentEvents;
using Relay.Middleware.Streaming;
using Relay.Middleware.WebSockets;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Hosting;

/// <summary>
/// Relay's step in YARP's proxy pipeline (docs/design.md, steps 3 and 6): resolves the route's settings, reads and
/// rewrites the JSON body, installs the request's <see cref="StreamLifetime"/> as its cancellation, and turns
/// YARP's failures before the first byte into OpenAI-style errors with the right status.
/// </summary>
internal sealed partial class RelayProxyMiddleware
{
    private readonly RequestDelegate _next;
    private readonly RouteSettingsResolver _resolver;
    private readonly TimeProvider _time;
    private readonly ActiveStreams _streams;
    private readonly ILogger _logger;

    private readonly RelayAuthenticator _auth;
    private readonly StreamTicketIssuer _tickets;

    public RelayProxyMiddleware(RequestDelegate next, RouteSettingsResolver resolver, TimeProvider time, ActiveStreams streams, RelayAuthenticator auth,
        StreamTicketIssuer tickets, ILogger<RelayProxyMiddleware> logger)
    {
        _next = next;
        _resolver = resolver;
        _time = time;
        _streams = streams;
        _auth = auth;
        _tickets = tickets;
        _logger = logger;
    }

    /// <summary>How much of an oversized JSON upload is read and discarded after its 413.</summary>
    private const long RejectedBodyDrainBytes = 1024 * 1024;

    public async Task InvokeAsync(HttpContext context)
    {
        if (_streams.Draining)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status503ServiceUnavailable,
                "Relay is shutting down and accepts no new requests.", RelayErrorTypes.RelayShutdown, "relay_shutdown", retryAfterSeconds: 1);
            return;
        }

        if (WebSocketBridge.IsBridgeRequest(context))
        {
            // The handshake is authenticated once, before the socket is accepted (401/403 as for any request);
            // a browser's token offered as a subprotocol is one more credential source. The session's requests
            // inherit the outcome (the credential feature and the rewritten Authorization) and come back through
            // ForwardAsync, the one upstream path.
            WebSocketTokenProtocol.Apply(context.Request);
            var bridgeRoute = context.Features.Get<IReverseProxyFeature>()?.Route.Config;
            if (await _auth.AuthenticateAsync(context, _resolver.Get(bridgeRoute)) is { } deniedSocket)
            {
                await deniedSocket.WriteAsync(context);
                return;
            }

            await context.RequestServices.GetRequiredService<WebSocketBridge>().RunAsync(context, ForwardAsync);
            return;
        }

        await ForwardAsync(context);
    }

    /// <summary>Relays one request upstream: route settings, body inspection, lifetime, YARP's forwarder, errors.</summary>
    private async Task ForwardAsync(HttpContext context)
    {
        var route = context.Features.Get<IReverseProxyFeature>()?.Route.Config;
        var settings = _resolver.Get(route);
        var bridged = context.Features.Get<IHttpResponseFeature>() is BridgedResponseFeature && context.Features.Get<RelayCredentialFeature>() is not null;
        if (!bridged && await _auth.AuthenticateAsync(context, settings) is { } denied)
        {
            await denied.WriteAsync(context);
            return;
        }

        var timeouts = StreamTimeouts.FromOptions(settings.Timeouts);
        if (context.Request.Headers.TryGetValue(StreamTimeouts.HeaderName, out var header)
            && !StreamTimeouts.TryApplyHeader(timeouts, settings.Timeouts, header.ToString(), out timeouts, out var headerError))
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status400BadRequest, headerError!, RelayErrorTypes.InvalidRequest, "invalid_timeout");
            return;
        }

        if (UnsendableHeader.Find(context.Request.Headers) is { } unsendable)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status400BadRequest, UnsendableHeader.Message(unsendable), RelayErrorTypes.InvalidRequest, "invalid_header");
            return;
        }

        var maxBody = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (maxBody is { IsReadOnly: false })
        {
            // A JSON body is checked against the limit by ChatRequestInspector, which answers 413 itself. Kestrel's
            // own limit is set a little higher so that, after that 413, Kestrel reads and discards the rest of an
            // oversized upload (and keeps the connection) instead of closing with unread data, whose TCP reset can
            // reach the client before the 413 does (nginx's lingering close, for the same reason).
            var inspected = HttpMethods.IsPost(context.Request.Method) && ChatRequestInspector.IsJsonEndpoint(context.Request.Path);
            maxBody.MaxRequestBodySize = settings.Limits.MaxRequestBodyBytes + (inspected ? RejectedBodyDrainBytes : 0);
        }

        var originalLifetime = context.Features.Get<IHttpRequestLifetimeFeature>();
        using var lifetime = new StreamLifetime(_time, originalLifetime, timeouts);
        var feature = new RelayRequestFeature { Route = settings, Lifetime = lifetime, RouteId = route?.RouteId };
        context.Features.Set(feature);

        if (HttpMethods.IsPost(context.Request.Method) && ChatRequestInspector.IsJsonEndpoint(context.Request.Path))
        {
            ChatRequestInspector.Failure? failure;
            try
            {
                failure = await ChatRequestInspector.InspectAsync(context, feature, settings.Limits.MaxRequestBodyBytes);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or BadHttpRequestException)
            {
                // The client went away, sent a broken body, or exceeded the body limit Kestrel enforces.
                Log.RequestBodyFailed(_logger, ex.GetType().Name);
                var rejected = RelayErrorTable.ForRequestBody(RejectedStatus(ex), settings.Limits.MaxRequestBodyBytes);
                await OpenAIError.TryWriteResponseAsync(context, rejected.Status, rejected.Message, rejected.Type, rejected.Code);
                return;
            }

            if (failure is { } f)
            {
                await OpenAIError.TryWriteResponseAsync(context, f.Status, f.Message, RelayErrorTypes.InvalidRequest, f.Code);
                return;
            }
        }

        if (StreamTicketIssuer.IsIssueRequest(context))
        {
            await _tickets.IssueAsync(context, feature);
            return;
        }

        // Not on the WebSocket bridge: its events are frames, and the socket has its own keep-alive.
        if (settings.Heartbeat is { BeforeFirstByte: true, IntervalSeconds: > 0 } && feature.Stream && feature.IsChatCompletion && !bridged)
        {
            feature.EarlyStart = EarlyStreamStart.Install(context, TimeSpan.FromSeconds(settings.Heartbeat.IntervalSeconds), _time, lifetime.Token);
        }

        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        _streams.Add(lifetime);
        try
        {
            await _next(context);
        }
        finally
        {
            context.Features.Set(originalLifetime);
            _streams.Remove(lifetime);
            if (feature.EarlyStart is { } early)
            {
                await early.DisposeAsync();
            }
        }

        if (context.Features.Get<IForwarderErrorFeature>() is { } error && (!context.Response.HasStarted || feature.EarlyStart is { Started: true }))
        {
            await WriteForwarderErrorAsync(context, error, lifetime, feature.EarlyStart is { Started: true });
        }
    }

    private async Task WriteForwarderErrorAsync(HttpContext context, IForwarderErrorFeature error, StreamLifetime lifetime, bool asEvent)
    {
        if (lifetime.Reason == StreamEndReason.ClientCancelled)
        {
            // A client that goes away is normal traffic (a closed tab, an HTTP/2 reset), not a proxy failure.
            Log.ForwarderClientCancelled(_logger, error.Error, error.Exception?.GetType().Name);
        }
        else
        {
            Log.ForwarderError(_logger, error.Error, lifetime.Reason, error.Exception?.GetType().Name);
        }

        if (RelayErrorTable.ForForwarderError(error.Error, lifetime.Reason, RejectedStatus(error.Exception)) is not { } described)
        {
            return;
        }

        if (asEvent)
        {
            // The 200 went out with an early heartbeat: the error is the stream's final event.
            SseWriter.WriteErrorEvent(context.Response.BodyWriter, described.Message, described.Type, described.Code);
            try
            {
                await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException)
            {
            }
        }
        else
        {
            await OpenAIError.TryWriteResponseAsync(context, described.Status, described.Message, described.Type, described.Code);
        }
    }

    /// <summary>The status the server chose when it rejected the request body (413 too large, 408 too slow), or 0.</summary>
    private static int RejectedStatus(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is BadHttpRequestException rejected)
            {
                return rejected.StatusCode;
            }
        }

        return 0;
    }

    private static partial class Log
    {
        [LoggerMessage(300, LogLevel.Warning, "Forwarding failed before the response started: {Error} ({Reason}, {ExceptionType}).", EventName = "ForwarderError")]
        public static partial void ForwarderError(ILogger logger, ForwarderError error, StreamEndReason reason, string? exceptionType);

        [LoggerMessage(302, LogLevel.Debug, "Forwarding stopped before the response started: the client went away ({Error}, {ExceptionType}).", EventName = "ForwarderClientCancelled")]
        public static partial void ForwarderClientCancelled(ILogger logger, ForwarderError error, string? exceptionType);

        [LoggerMessage(301, LogLevel.Debug, "The request body could not be read: {ExceptionType}.", EventName = "RequestBodyFailed")]
        public static partial void RequestBodyFailed(ILogger logger, string exceptionType);
    }
}

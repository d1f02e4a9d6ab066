using System.Net.WebSockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The WebSocket bridge for duplex streams (product spec, "WebSocket bridge for duplex": "push new messages
/// mid-stream and the model will gracefully cut over"): a WebSocket at <c>/v1/chat/ws</c>, or a WebSocket upgrade
/// of <c>/v1/chat/completions</c>, runs a conversation whose responses are ordinary chat-completions requests
/// relayed by the same path as SSE ones (docs/design.md: "one upstream path and one event pipeline"). The protocol is
/// docs/websocket-protocol.md.
/// </summary>
internal sealed class WebSocketBridge
{
    private readonly IOptionsMonitor<RelayOptions> _options;
    private readonly ActiveStreams _streams;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public WebSocketBridge(IOptionsMonitor<RelayOptions> options, ActiveStreams streams, TimeProvider time, ILogger<WebSocketBridge> logger)
    {
        _options = options;
        _streams = streams;
        _time = time;
        _logger = logger;
    }

    /// <summary>Whether the request is for the bridge: any request to <c>…/chat/ws</c>, or a WebSocket request to <c>…/chat/completions</c>.</summary>
    public static bool IsBridgeRequest(HttpContext context)
    {
        var path = context.Request.Path.Value;
        return path is not null && (path.EndsWith("/chat/ws", StringComparison.OrdinalIgnoreCase)
            || (path.EndsWith("/chat/completions", StringComparison.OrdinalIgnoreCase) && WebSocketHandshake.IsWebSocketRequest(context)));
    }

    /// <summary>
    /// Accepts the WebSocket and runs the conversation; <paramref name="forward"/> relays each response's request
    /// (Relay's step after authentication, then YARP's pipeline).
    /// </summary>
    public async Task RunAsync(HttpContext context, RequestDelegate forward)
    {
        var options = _options.CurrentValue;
        if (!options.WebSocket.Enabled)
        {
            await forward(context);
            return;
        }

        if (!WebSocketHandshake.IsWebSocketRequest(context))
        {
            await WebSocketHandshake.WriteUpgradeRequiredAsync(context,
                "This endpoint is a WebSocket: connect with a WebSocket client (see docs/websocket-protocol.md).", "websocket_required");
            return;
        }

        // RelayProxyMiddleware already moved a subprotocol token into Authorization and authenticated the handshake;
        // the template keeps the resulting headers for every response's request.
        var template = UpstreamRequestTemplate.From(context);
        var (stream, _) = await WebSocketHandshake.AcceptAsync(context);
        if (stream is null)
        {
            return;
        }

        var bridge = options.WebSocket;
        var guard = new WebSocketFrameGuard(stream, bridge.MaxMessageBytes);
        using var socket = WebSocket.CreateFromStream(guard, new WebSocketCreationOptions
        {
            IsServer = true,
            SubProtocol = context.Response.Headers.SecWebSocketProtocol.ToString() is { Length: > 0 } p ? p : null,
            KeepAliveInterval = TimeSpan.FromSeconds(bridge.KeepAliveIntervalSeconds),
            KeepAliveTimeout = bridge.KeepAliveTimeoutSeconds > 0 ? TimeSpan.FromSeconds(bridge.KeepAliveTimeoutSeconds) : Timeout.InfiniteTimeSpan,
        });
        await using var session = new WebSocketSession(socket, guard, context, forward, template, options, _streams, _time, _logger);
        await session.RunAsync();
    }
}

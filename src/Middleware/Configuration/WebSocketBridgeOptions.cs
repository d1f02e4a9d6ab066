namespace Relay.Middleware.Configuration;

/// <summary>The WebSocket bridge (docs/websocket-protocol.md).</summary>
public sealed class WebSocketBridgeOptions
{
    /// <summary>Whether WebSocket upgrades of the chat routes are bridged; when off they are forwarded as any request.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The largest client message (all its frames); a larger one closes the socket with 1009. Default 1 MiB.</summary>
    public int MaxMessageBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Bytes of a response held for a slow client before Relay stops reading the upstream; a client that takes none
    /// for <see cref="TimeoutOptions.WriteStallSeconds"/> gets its response cancelled. Default 64 KiB.
    /// </summary>
    public int MaxSendQueueBytes { get; set; } = 64 * 1024;

    /// <summary>How often Relay pings an idle client (RFC 6455 ping). Zero: no keepalive. Default 15 s.</summary>
    public double KeepAliveIntervalSeconds { get; set; } = 15;

    /// <summary>A client that answers a ping with no pong for this long is dropped. Zero: pings only. Default 15 s.</summary>
    public double KeepAliveTimeoutSeconds { get; set; } = 15;

    /// <summary>How long Relay waits for the client's close frame after sending its own. Default 5 s.</summary>
    public double CloseTimeoutSeconds { get; set; } = 5;
}

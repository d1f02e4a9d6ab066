namespace Relay.Middleware.Configuration;

/// <summary>
/// Relay's settings, bound from the <c>Relay</c> configuration section. Every setting here is the
/// default for all routes; a YARP route overrides it with a metadata entry
/// (for example <c>"Relay.Cadence.MaxTokens": "4"</c>), see <see cref="RouteSettings"/>.
/// </summary>
public sealed class RelayOptions
{
    /// <summary>The configuration section name.</summary>
    public const string SectionName = "Relay";

    /// <summary>The default upstream.</summary>
    public UpstreamOptions Upstream { get; set; } = new();

    /// <summary>Request limits.</summary>
    public RequestLimitsOptions Limits { get; set; } = new();

    /// <summary>Flush cadence of chat-completion streams.</summary>
    public CadenceOptions Cadence { get; set; } = new();

    /// <summary>Time-to-first-token, idle, maximum-duration and write-stall timeouts.</summary>
    public TimeoutOptions Timeouts { get; set; } = new();

    /// <summary>Backpressure: how much Relay holds for one slow client.</summary>
    public BackpressureOptions Backpressure { get; set; } = new();

    /// <summary>Graceful shutdown.</summary>
    public ShutdownOptions Shutdown { get; set; } = new();

    /// <summary>The WebSocket bridge (<c>/v1/chat/ws</c>, or a WebSocket upgrade of <c>/v1/chat/completions</c>).</summary>
    public WebSocketBridgeOptions WebSocket { get; set; } = new();
}

/// <summary>The default upstream of the default route.</summary>
public sealed class UpstreamOptions
{
    /// <summary>
    /// The base URL of the OpenAI-compatible upstream (for example <c>https://api.openai.com</c>): the default
    /// route <c>/v1/{**rest}</c> forwards to it. Empty: Relay runs in front of its built-in simulated upstream.
    /// </summary>
    public string? BaseUrl { get; set; }
}

/// <summary>Request limits.</summary>
public sealed class RequestLimitsOptions
{
    /// <summary>The largest request body accepted (413 beyond). Default 8 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;
}

/// <summary>Flush cadence defaults (product spec: "every ~20 ms or every 8 tokens, whichever comes first").</summary>
public sealed class CadenceOptions
{
    /// <summary>Whether content deltas are coalesced at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Flush after this many upstream tokens. 1 sends every token as it comes.</summary>
    public int MaxTokens { get; set; } = 8;

    /// <summary>Flush at the latest this many milliseconds after the first unflushed token.</summary>
    public int IntervalMs { get; set; } = 20;
}

/// <summary>Timeouts. Zero disables one.</summary>
public sealed class TimeoutOptions
{
    /// <summary>
    /// Until the first byte goes to the client (upstream headers and first event). When it fires nothing
    /// was sent, so the client gets a 504 with an OpenAI-style error. Default 60 s.
    /// </summary>
    public double FirstTokenSeconds { get; set; } = 60;

    /// <summary>No upstream bytes for this long mid-stream ends the stream with a timeout error event. Default 60 s.</summary>
    public double IdleSeconds { get; set; } = 60;

    /// <summary>The hard maximum duration of one request. Default 30 minutes.</summary>
    public double MaxDurationSeconds { get; set; } = 1800;

    /// <summary>The largest value a client may ask for with the <c>Relay-Timeout</c> header. Default 30 minutes.</summary>
    public double MaxRequestTimeoutSeconds { get; set; } = 1800;

    /// <summary>A client that accepts no bytes for this long is dropped and the upstream cancelled. Default 30 s.</summary>
    public double WriteStallSeconds { get; set; } = 30;
}

/// <summary>Backpressure settings.</summary>
public sealed class BackpressureOptions
{
    /// <summary>
    /// At most this many bytes are held for one stream's client before Relay stops reading the upstream
    /// (which pushes back over TCP). Default 64 KiB.
    /// </summary>
    public int MaxBufferedBytes { get; set; } = 64 * 1024;
}

/// <summary>Graceful shutdown.</summary>
public sealed class ShutdownOptions
{
    /// <summary>On SIGTERM, streams in flight get this long to finish before they are ended with an error event. Default 10 s.</summary>
    public double DrainSeconds { get; set; } = 10;
}

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

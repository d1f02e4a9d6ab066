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

    /// <summary>OpenTelemetry export of Relay's metrics and logs (off unless an endpoint is set).</summary>
    public TelemetryOptions Telemetry { get; set; } = new();

    /// <summary>Who may call a route, and with which upstream credential (per route).</summary>
    public AuthOptions Auth { get; set; } = new();

    /// <summary>
    /// Relay-issued client keys, stored as SHA-256 hashes (never the keys themselves). Used on routes whose
    /// <see cref="AuthOptions.Mode"/> is <see cref="RelayAuthMode.RelayKeys"/>. Global: not overridable per route.
    /// </summary>
    public List<RelayKeyOptions> RelayKeys { get; set; } = [];

    /// <summary>One-time stream tickets for clients that cannot send headers (<c>EventSource</c>).</summary>
    public TicketOptions Tickets { get; set; } = new();

    /// <summary>SSE keep-alive comments during upstream silence (per route).</summary>
    public HeartbeatOptions Heartbeat { get; set; } = new();

    /// <summary>Cross-origin access for browser clients (per route); off by default.</summary>
    public CrossOriginOptions Cors { get; set; } = new();

    /// <summary>The playground page at <c>GET /</c>.</summary>
    public PlaygroundOptions Playground { get; set; } = new();

    /// <summary>The WebSocket bridge (<c>/v1/chat/ws</c>, or a WebSocket upgrade of <c>/v1/chat/completions</c>).</summary>
    public WebSocketBridgeOptions WebSocket { get; set; } = new();

    // Resilience and compression: per-route settings.

    /// <summary>Retries before the first byte, failover and circuit breakers (per route).</summary>
    public Resilience.ResilienceOptions Resilience { get; set; } = new();

    /// <summary>Response compression of event streams (per route); off by default.</summary>
    public Compression.CompressionOptions Compression { get; set; } = new();

    /// <summary>Streamed structured output: schema validation as it streams (per route); on by default.</summary>
    public StructuredOutput.StructuredOutputOptions StructuredOutput { get; set; } = new();
    /// <summary>State shared by several instances (tickets, resumable streams): in memory, or Redis. Global.</summary>
    public State.StateOptions State { get; set; } = new();

    /// <summary>Resumable streams (per route); off by default, and they need <see cref="State"/> in Redis.</summary>
    public Resume.ResumeOptions Resume { get; set; } = new();
}

/// <summary>How a route authenticates its callers.</summary>
public enum RelayAuthMode
{
    /// <summary>The client's own <c>Authorization</c> goes to the upstream unchanged; the upstream decides.</summary>
    PassThrough,

    /// <summary>
    /// Clients present a Relay-issued key (checked against <see cref="RelayOptions.RelayKeys"/>); Relay replaces
    /// it with the route's <see cref="AuthOptions.UpstreamApiKey"/>, which clients never see.
    /// </summary>
    RelayKeys,
}

/// <summary>Authentication of one route (every property can be overridden per route).</summary>
public sealed class AuthOptions
{
    /// <summary>Relay keys or pass-through of the client's <c>Authorization</c>. Default pass-through.</summary>
    public RelayAuthMode Mode { get; set; } = RelayAuthMode.PassThrough;

    /// <summary>
    /// In <see cref="RelayAuthMode.RelayKeys"/> mode, the upstream credential Relay sends as
    /// <c>Authorization: Bearer ...</c>. Empty: no <c>Authorization</c> goes upstream (a local server without keys).
    /// Keep it out of files: set it with an environment variable or a secret store.
    /// </summary>
    public string? UpstreamApiKey { get; set; }

    /// <summary>
    /// Accept the credential as the query parameter <c>access_token</c> (RFC 6750, section 2.3) for clients that
    /// cannot set headers (browser <c>EventSource</c>, <c>WebSocket</c>). The parameter becomes the
    /// <c>Authorization</c> header and is removed from the forwarded URL and from logged URLs. Default off.
    /// </summary>
    public bool QueryToken { get; set; }

    /// <summary>
    /// A second accepted name for the query token (for example <c>api_key</c>). Global: the name is removed from
    /// every request's URL before anything logs it, which happens before a route is known.
    /// </summary>
    public string? QueryTokenAlias { get; set; }
}

/// <summary>One Relay-issued client key.</summary>
public sealed class RelayKeyOptions
{
    /// <summary>A name for logs and accounting (never the key).</summary>
    public string Name { get; set; } = "";

    /// <summary>The SHA-256 of the key's UTF-8 bytes, as 64 hex digits (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>Route ids the key may call; empty: every route in relay-keys mode.</summary>
    public List<string> Routes { get; set; } = [];
}

/// <summary>One-time stream tickets.</summary>
public sealed class TicketOptions
{
    /// <summary>Whether <c>POST /relay/v1/tickets</c> and <c>GET /relay/v1/streams/{ticket}</c> are served. Default on.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long a ticket can be redeemed after it was issued. Default 60 s.</summary>
    public double LifetimeSeconds { get; set; } = 60;

    /// <summary>
    /// The HMAC-SHA256 key tickets are signed with, base64, at least 32 bytes. Empty: a random key is generated at
    /// start, so tickets do not survive a restart and cannot be redeemed on another instance; set one shared key
    /// (and a shared ticket store) when several instances sit behind a load balancer.
    /// </summary>
    public string? SigningKey { get; set; }

    /// <summary>The chat-completions path a ticket streams from when the issuing request names none. Default <c>/v1/chat/completions</c>.</summary>
    public string ChatCompletionsPath { get; set; } = "/v1/chat/completions";

    /// <summary>
    /// The AES-256-GCM key, base64 of 32 random bytes (<c>openssl rand -base64 32</c>), that seals a ticket's
    /// request and credential at rest in a shared store. Required with <c>Relay:State:Redis</c>; the same on every instance.
    /// </summary>
    public string? EncryptionKey { get; set; }
}

/// <summary>SSE heartbeats: <c>: keep-alive</c> comments written during upstream silence.</summary>
public sealed class HeartbeatOptions
{
    /// <summary>Write a heartbeat after this many seconds without a write to the client. 0 turns them off. Default 15 s.</summary>
    public double IntervalSeconds { get; set; } = 15;

    /// <summary>
    /// Also send heartbeats before the upstream's first byte: the 200 and SSE headers go out at the first
    /// heartbeat, so an upstream error after that point arrives as a final SSE error event instead of an HTTP
    /// status. Default off.
    /// </summary>
    public bool BeforeFirstByte { get; set; }
}

/// <summary>CORS for browser clients on other origins.</summary>
public sealed class CrossOriginOptions
{
    /// <summary>Origins allowed to call the route (for example <c>https://app.example.com</c>; <c>*</c> for any). Empty: CORS off.</summary>
    public string[] AllowedOrigins { get; set; } = [];

    /// <summary>How long browsers may cache a preflight answer. Default 600 s.</summary>
    public double PreflightMaxAgeSeconds { get; set; } = 600;

    /// <summary>
    /// Let the upstream own CORS on the route: its <c>Access-Control-*</c> response headers pass to the client and
    /// preflights are forwarded to it. Default off: Relay strips the upstream's CORS headers and answers preflights
    /// itself. Cannot be combined with <see cref="AllowedOrigins"/> in one place; a route that sets it ignores the default
    /// allowed origins.
    /// </summary>
    public bool PassUpstreamHeaders { get; set; }
}

/// <summary>The playground page.</summary>
public sealed class PlaygroundOptions
{
    /// <summary>
    /// Serve the playground at <c>GET /</c>. Unset: on in the Relay host's demo mode (in front of its built-in
    /// simulated upstream), off otherwise (<c>MapRelay</c> maps it only when true; an explicit
    /// <c>MapRelayPlayground()</c> maps it unless false).
    /// </summary>
    public bool? Enabled { get; set; }
}

/// <summary>The default upstream of the default route.</summary>
public sealed class UpstreamOptions
{
    /// <summary>
    /// The base URL of the OpenAI-compatible upstream (for example <c>https://api.openai.com</c>): the default
    /// route <c>/v1/{**rest}</c> forwards to it, unless YARP routes are configured (the <c>ReverseProxy</c>
    /// section), which then take every request (a start-up warning says so). Empty in the Relay host: Relay runs in
    /// front of its built-in simulated upstream.
    /// </summary>
    public string? BaseUrl { get; set; }

    /// <summary>
    /// A PEM file of CA certificates trusted for upstream TLS besides the system's roots (a corporate TLS-inspecting
    /// proxy's private CA); a cluster's metadata <c>Relay.CaBundlePath</c> overrides it. Empty: the system's roots only.
    /// </summary>
    public string? CaBundlePath { get; set; }
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

/// <summary>
/// OpenTelemetry export. Nothing is exported by default: Relay (host or package) exports metrics (meter <c>Relay</c>, with the
/// <c>gen_ai.*</c> instruments, plus ASP.NET Core's and Kestrel's) and logs over OTLP only when
/// <see cref="OtlpEndpoint"/> or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set. Collector credentials
/// belong in <c>OTEL_EXPORTER_OTLP_HEADERS</c>, which the exporter reads itself, never in this file.
/// </summary>
public sealed class TelemetryOptions
{
    /// <summary>The collector's base address, e.g. <c>http://otel-collector:4318</c>; empty: no export.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><c>http/protobuf</c> (default, port 4318) or <c>grpc</c> (port 4317).</summary>
    public string OtlpProtocol { get; set; } = "http/protobuf";

    /// <summary>How often metrics are exported. Default 15 s.</summary>
    public int MetricExportIntervalMs { get; set; } = 15_000;
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

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

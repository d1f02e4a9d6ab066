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

/// <summary>
/// OpenTelemetry export. Nothing is exported by default: the host exports metrics (meter <c>Relay</c>, with the
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

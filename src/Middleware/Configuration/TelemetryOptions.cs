namespace Relay.Middleware.Configuration;

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

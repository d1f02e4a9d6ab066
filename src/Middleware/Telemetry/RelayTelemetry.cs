using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Relay.Middleware.Accounting;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Telemetry;

/// <summary>
/// OpenTelemetry export: off unless <c>Relay:Telemetry:OtlpEndpoint</c> or the standard
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, so a default Relay sends nothing anywhere. When on, it exports the
/// <c>Relay</c> meter (gen_ai.* instruments), ASP.NET Core's and Kestrel's meters, and logs (the per-stream
/// <c>StreamEnded</c> record among them) over OTLP. Traces are not exported: request URLs and headers would
/// travel in span attributes, and Relay never lets a credential leave in telemetry.
/// </summary>
internal static class RelayTelemetry
{
    /// <summary>The standard variable that points every OpenTelemetry SDK at a collector.</summary>
    public const string StandardEndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>
    /// Adds the exporters when an endpoint is set. Decided when services are added: OpenTelemetry's builders register
    /// their services then, so the setting cannot be read later from the options.
    /// </summary>
    public static void AddExport(IServiceCollection services, TelemetryOptions options)
    {
        var endpoint = !string.IsNullOrWhiteSpace(options.OtlpEndpoint) ? options.OtlpEndpoint : Environment.GetEnvironmentVariable(StandardEndpointVariable);
        if (string.IsNullOrWhiteSpace(endpoint) || !Uri.TryCreate(endpoint, UriKind.Absolute, out var baseUri))
        {
            return;
        }

        var grpc = options.OtlpProtocol == "grpc";
        var interval = options.MetricExportIntervalMs;

        // The OTLP/HTTP exporter posts to the address it is given; with an address set in code it does not add the
        // signal's path itself (only the OTEL_* variables get that treatment), so it is added here.
        void Configure(OtlpExporterOptions exporter, string signalPath)
        {
            exporter.Protocol = grpc ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
            exporter.Endpoint = grpc ? baseUri : new Uri(baseUri, baseUri.AbsolutePath.TrimEnd('/') + signalPath);
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("relay"))
            .WithMetrics(metrics => metrics
                .AddMeter(RelayMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
                .AddOtlpExporter((exporter, reader) =>
                {
                    Configure(exporter, "/v1/metrics");
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
                }))
            .WithLogging(logging => logging.AddOtlpExporter(exporter => Configure(exporter, "/v1/logs")));
    }
}

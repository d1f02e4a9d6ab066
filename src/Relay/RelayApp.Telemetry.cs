using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Relay.Middleware.Accounting;
using Relay.Middleware.Configuration;

namespace Relay;

public static partial class RelayApp
{
    /// <summary>
    /// OpenTelemetry export (issue 4): off unless <c>Relay:Telemetry:OtlpEndpoint</c> or the standard
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, so a default Relay sends nothing anywhere. When on, it exports the
    /// <c>Relay</c> meter (gen_ai.* instruments), ASP.NET Core's and Kestrel's meters, and logs (the per-stream
    /// <c>StreamEnded</c> record among them) over OTLP. Traces are not exported: request URLs and headers would
    /// travel in span attributes, and Relay never lets a credential leave in telemetry.
    /// </summary>
    private static void ConfigureTelemetry(WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection("Relay:Telemetry").Get<TelemetryOptions>() ?? new TelemetryOptions();
        var endpoint = !string.IsNullOrWhiteSpace(options.OtlpEndpoint) ? options.OtlpEndpoint : builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        if (string.IsNullOrWhiteSpace(endpoint) || !Uri.TryCreate(endpoint, UriKind.Absolute, out var baseUri))
        {
            return;
        }

        var grpc = options.OtlpProtocol == "grpc";
        // The OTLP/HTTP exporter posts to the address it is given; with an address set in code it does not add the
        // signal's path itself (only the OTEL_* variables get that treatment), so it is added here.
        void Configure(OtlpExporterOptions exporter, string signalPath)
        {
            exporter.Protocol = grpc ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
            exporter.Endpoint = grpc ? baseUri : new Uri(baseUri, baseUri.AbsolutePath.TrimEnd('/') + signalPath);
        }

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("relay"))
            .WithMetrics(metrics => metrics
                .AddMeter(RelayMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel")
                .AddOtlpExporter((exporter, reader) =>
                {
                    Configure(exporter, "/v1/metrics");
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = options.MetricExportIntervalMs;
                }))
            .WithLogging(logging => logging.AddOtlpExporter(exporter => Configure(exporter, "/v1/logs")));
    }
}

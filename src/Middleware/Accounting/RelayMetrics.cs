using System.Diagnostics.Metrics;

namespace Relay.Middleware.Accounting;

/// <summary>
/// Relay's metrics, named after the OpenTelemetry GenAI semantic conventions where one exists
/// (<c>gen_ai.client.token.usage</c>, <c>gen_ai.server.time_to_first_token</c>, <c>gen_ai.server.request.duration</c>),
/// and <c>relay.*</c> for what is Relay's own.
/// </summary>
internal sealed class RelayMetrics : IDisposable
{
    /// <summary>The meter's name, for OpenTelemetry's <c>AddMeter</c>.</summary>
    public const string MeterName = "Relay";

    private readonly Meter _meter;

    /// <summary>Creates the instruments.</summary>
    public RelayMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        TokenUsage = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Tokens used per stream, by gen_ai.token.type (input, output).");
        TimeToFirstToken = _meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s", "Time until the first byte of a stream reached the client.");
        Duration = _meter.CreateHistogram<double>("gen_ai.server.request.duration", "s", "Duration of relayed requests.");
        TokensDelivered = _meter.CreateCounter<long>("relay.stream.tokens.delivered", "{token}", "Completion tokens whose content reached the client.");
        TokensGenerated = _meter.CreateCounter<long>("relay.stream.tokens.generated", "{token}", "Completion tokens the upstream generated (usage, or counted up to cancellation).");
        Streams = _meter.CreateCounter<long>("relay.streams", "{stream}", "Streams ended, by relay.stream.end_reason.");
    }

    internal Histogram<long> TokenUsage { get; }

    internal Histogram<double> TimeToFirstToken { get; }

    internal Histogram<double> Duration { get; }

    internal Counter<long> TokensDelivered { get; }

    internal Counter<long> TokensGenerated { get; }

    internal Counter<long> Streams { get; }

    /// <inheritdoc />
    public void Dispose() => _meter.Dispose();
}

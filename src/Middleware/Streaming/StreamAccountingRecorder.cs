using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Relay.Middleware.Accounting;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Model;

namespace Relay.Middleware.Streaming;

/// <summary>Turns a finished stream into a <see cref="StreamUsageRecord"/>: a structured log event, metrics, and the sinks.</summary>
internal sealed partial class StreamAccountingRecorder
{
    private readonly TimeProvider _time;
    private readonly RelayMetrics _metrics;
    private readonly IEnumerable<IStreamUsageSink> _sinks;
    private readonly ILogger _logger;

    public StreamAccountingRecorder(TimeProvider time, RelayMetrics metrics, IEnumerable<IStreamUsageSink> sinks, ILogger<StreamAccountingRecorder> logger)
    {
        _time = time;
        _metrics = metrics;
        _sinks = sinks;
        _logger = logger;
    }

    /// <summary>What the log line says for a count that is not known: a number when known, this word when not.</summary>
    internal const string UnknownCount = "unknown";

    public void Record(HttpContext context, RelayRequestFeature? feature, StreamAccounting accounting, StreamLifetime lifetime)
    {
        var now = _time.GetTimestamp();
        var reason = lifetime.Reason == StreamEndReason.None ? StreamEndReason.Completed : lifetime.Reason;
        var counted = accounting.CompletionTokens is null;
        var record = new StreamUsageRecord
        {
            Route = feature?.RouteId,
            Upstream = UpstreamOf(context),
            Model = feature?.Model ?? accounting.Model,
            PromptTokens = accounting.PromptTokens,
            CompletionTokensGenerated = accounting.CompletionTokens ?? accounting.UpstreamContentEvents,
            CompletionTokensCounted = counted,
            CompletionTokensDelivered = DeliveredTokens(accounting,
                context.Features.Get<IHttpResponseBodyFeature>() is AcceptedDeliveryBody accepted ? accepted.AcceptedContentEvents : accounting.DeliveredContentEvents),
            TimeToFirstToken = lifetime.FirstByteAt == 0 ? null : _time.GetElapsedTime(lifetime.StartedAt, lifetime.FirstByteAt),
            Duration = _time.GetElapsedTime(lifetime.StartedAt, now),
            EndReason = reason,
            UpstreamAttempts = context.Features.Get<Resilience.UpstreamAttemptsFeature>()?.Attempts ?? 1,
            UpstreamDestinations = [.. context.Features.Get<Resilience.UpstreamAttemptsFeature>()?.Destinations ?? []],
        };

        // The request's own copy: the WebSocket bridge reports these figures in response.done, so a client and the
        // StreamEnded record never disagree about one response.
        context.Features.Set(record);

        // A stream cut before the upstream's usage arrived has no prompt count: say so rather than print nothing.
        Log.StreamEnded(_logger, record.Route, record.Upstream, record.Model, record.PromptTokens?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? UnknownCount, record.CompletionTokensGenerated,
            record.CompletionTokensCounted, record.CompletionTokensDelivered, record.TimeToFirstToken?.TotalMilliseconds,
            record.Duration.TotalMilliseconds, record.EndReason, record.UpstreamAttempts, string.Join(',', record.UpstreamDestinations));

        var tags = new TagList
        {
            { "gen_ai.operation.name", "chat" },
            { "gen_ai.request.model", record.Model },
            { "relay.route", record.Route },
        };
        var reasonTags = tags;
        reasonTags.Add("relay.stream.end_reason", ReasonName(reason));
        if (reason != StreamEndReason.Completed)
        {
            reasonTags.Add("error.type", ReasonName(reason));
        }

        _metrics.Streams.Add(1, reasonTags);
        _metrics.Duration.Record(record.Duration.TotalSeconds, reasonTags);
        if (record.TimeToFirstToken is { } ttft)
        {
            _metrics.TimeToFirstToken.Record(ttft.TotalSeconds, tags);
        }

        _metrics.TokensGenerated.Add(record.CompletionTokensGenerated, tags);
        _metrics.TokensDelivered.Add(record.CompletionTokensDelivered, tags);
        if (record.PromptTokens is { } prompt)
        {
            var input = tags;
            input.Add("gen_ai.token.type", "input");
            _metrics.TokenUsage.Record(prompt, input);
        }

        var output = tags;
        output.Add("gen_ai.token.type", "output");
        _metrics.TokenUsage.Record(record.CompletionTokensGenerated, output);

        foreach (var sink in _sinks)
        {
            try
            {
                sink.OnStreamEnded(record);
            }
            catch (Exception ex)
            {
                Log.SinkFailed(_logger, ex);
            }
        }
    }

    internal static string ReasonName(StreamEndReason reason) => reason switch
    {
        StreamEndReason.Completed => "completed",
        StreamEndReason.ClientCancelled => "client_cancelled",
        StreamEndReason.FirstTokenTimeout => "first_token_timeout",
        StreamEndReason.IdleTimeout => "idle_timeout",
        StreamEndReason.MaxDurationTimeout => "max_duration_timeout",
        StreamEndReason.WriteStallTimeout => "write_stall_timeout",
        StreamEndReason.UpstreamError => "upstream_error",
        StreamEndReason.RelayShutdown => "relay_shutdown",
        StreamEndReason.SchemaViolation => "schema_violation",
        _ => "unknown",
    };

    private static string? UpstreamOf(HttpContext context)
    {
        var address = context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address;
        return address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri)
            ? uri.GetLeftPart(UriPartial.Authority)
            : null;
    }

    /// <inheritdoc cref="DeliveredTokens(StreamAccounting, long)"/>
    internal static long DeliveredTokens(StreamAccounting accounting) => DeliveredTokens(accounting, accounting.DeliveredContentEvents);

    /// <summary>
    /// Completion tokens delivered, from the content events whose content the server accepted for the client
    /// (<paramref name="events"/>, see <see cref="AcceptedDeliveryBody"/>). Content events count tokens until the
    /// upstream's usage says otherwise: an upstream may split one token over two events (a character cut between them)
    /// or put several in one. With usage known, a stream delivered in full delivered all of it, and a cut one its
    /// share, so delivered never exceeds generated.
    /// </summary>
    internal static long DeliveredTokens(StreamAccounting accounting, long events)
    {
        if (accounting.CompletionTokens is not { } tokens || accounting.UpstreamContentEvents == 0)
        {
            return events;
        }

        return events >= accounting.UpstreamContentEvents ? tokens : tokens * events / accounting.UpstreamContentEvents;
    }

    private static partial class Log
    {
        [LoggerMessage(100, LogLevel.Information,
            "Stream ended: route {Route}, upstream {Upstream}, model {Model}, prompt tokens {PromptTokens}, completion tokens generated {CompletionTokensGenerated} (counted: {CompletionTokensCounted}), delivered {CompletionTokensDelivered}, time to first token {TimeToFirstTokenMs} ms, duration {DurationMs} ms, end {EndReason}, upstream attempts {UpstreamAttempts} ({UpstreamDestinations})",
            EventName = "StreamEnded")]
        public static partial void StreamEnded(ILogger logger, string? route, string? upstream, string? model, string promptTokens,
            long completionTokensGenerated, bool completionTokensCounted, long completionTokensDelivered, double? timeToFirstTokenMs,
            double durationMs, StreamEndReason endReason, int upstreamAttempts, string upstreamDestinations);

        [LoggerMessage(101, LogLevel.Error, "A stream usage sink failed.", EventName = "UsageSinkFailed")]
        public static partial void SinkFailed(ILogger logger, Exception exception);
    }
}

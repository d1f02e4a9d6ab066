using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Streaming;

/// <summary>
/// Takes over the body of every <c>text/event-stream</c> response YARP receives: marks it unbufferable for
/// proxies in front of Relay, and relays it through the stream's event pipeline instead of YARP's byte copier
/// (which cannot re-chunk, repair UTF-8, or end a failed stream with an error event). YARP is told to skip its
/// own body copy (<see cref="ResponseTransformContext.SuppressResponseBody"/>).
/// </summary>
internal sealed class SseResponseTransform : ResponseTransform
{
    private readonly SseStreamRelay _relay;
    private readonly TimeProvider _time;
    private readonly RouteSettingsResolver _settings;
    private readonly StreamAccountingRecorder _recorder;

    public SseResponseTransform(SseStreamRelay relay, TimeProvider time, RouteSettingsResolver settings, StreamAccountingRecorder recorder)
    {
        _relay = relay;
        _time = time;
        _settings = settings;
        _recorder = recorder;
    }

    public override async ValueTask ApplyAsync(ResponseTransformContext context)
    {
        var upstream = context.ProxyResponse;
        var http = context.HttpContext;
        if (upstream is null || context.SuppressResponseBody)
        {
            // No answer, or an earlier transform took it (an answer held back to be retried).
            return;
        }

        var early = http.Features.Get<RelayRequestFeature>()?.EarlyStart;
        if (early is not null)
        {
            // From here on the relay loop writes (and heartbeats); the early heartbeats must be done first.
            await early.StopAsync();
        }

        if (!IsEventStream(upstream.Content.Headers.ContentType?.MediaType))
        {
            if (early is { Started: true })
            {
                // The client already has a 200 and SSE headers: the upstream's answer becomes a final error event.
                context.SuppressResponseBody = true;
                await WriteUpstreamAnswerAsEventAsync(http, upstream);
                return;
            }

            // The upstream answered; YARP copies the body. Only the hard maximum duration still applies.
            await Errors.BodylessUpstreamError.ApplyAsync(http, upstream, context.CancellationToken);
            http.Features.Get<RelayRequestFeature>()?.Lifetime.OnFirstByteSent();
            return;
        }

        MarkUnbuffered(http.Response);
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        context.SuppressResponseBody = true;

        var feature = http.Features.Get<RelayRequestFeature>();
        var ownsLifetime = feature is null;
        var lifetime = feature?.Lifetime ?? new StreamLifetime(_time, http.Features.Get<IHttpRequestLifetimeFeature>(),
            StreamTimeouts.FromOptions(_settings.Get(null).Timeouts));
        try
        {
            // The WebSocket bridge sets its frame sink on the bridged request; SSE otherwise. Frames get no SSE
            // heartbeats: the socket has its own keep-alive.
            var sink = http.Features.Get<IStreamEventSink>();
            using var pipeline = new StreamEventPipeline(BuildSettings(feature), _time, sink);
            feature?.Accounting = pipeline.Accounting;
            await _relay.RunAsync(http, upstream, pipeline, lifetime, sink is null ? BuildHeartbeat(feature, early) : default);
            _recorder.Record(http, feature, pipeline.Accounting, lifetime);
        }
        finally
        {
            if (ownsLifetime)
            {
                lifetime.Dispose();
            }
        }
    }

    /// <summary>Proxy-safe SSE headers: no buffering by nginx-style proxies, no caching, no compression.</summary>
    internal static void MarkUnbuffered(HttpResponse response) => MarkUnbuffered(response.Headers);

    /// <inheritdoc cref="MarkUnbuffered(HttpResponse)"/>
    internal static void MarkUnbuffered(IHeaderDictionary headers)
    {
        headers["X-Accel-Buffering"] = "no";
        headers[HeaderNames.CacheControl] = "no-cache, no-transform";
        headers.ContentLength = null;
        headers.Remove(HeaderNames.ContentEncoding);
    }

    internal static StreamHeartbeat BuildHeartbeat(RelayRequestFeature? feature, EarlyStreamStart? early)
    {
        var settings = feature?.Route.Heartbeat;
        return settings is null
            ? default
            : new StreamHeartbeat(TimeSpan.FromSeconds(settings.IntervalSeconds), settings.BeforeFirstByte || early is { Started: true });
    }

    /// <summary>
    /// An upstream answer that is not a stream, after the response started early: an OpenAI error object in the body
    /// is passed on as the final event; anything else is described.
    /// </summary>
    private static async Task WriteUpstreamAnswerAsEventAsync(HttpContext http, HttpResponseMessage upstream)
    {
        var output = http.Response.BodyWriter;
        byte[] body;
        try
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(limit.Token, http.RequestAborted);
            body = await upstream.Content.ReadAsByteArrayAsync(linked.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or System.Net.Http.HttpRequestException)
        {
            body = [];
        }

        if (body.Length is > 0 and < 64 * 1024 && IsErrorObject(body))
        {
            ServerSentEvents.SseWriter.WriteData(output, body);
        }
        else
        {
            ServerSentEvents.SseWriter.WriteErrorEvent(output, $"The upstream answered {(int)upstream.StatusCode} without a stream.",
                Errors.RelayErrorTypes.UpstreamError, "upstream_error");
        }

        try
        {
            await output.FlushAsync(http.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
        }
    }

    private static bool IsErrorObject(byte[] body)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(body);
            return document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object
                && document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == System.Text.Json.JsonValueKind.Object;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    internal static bool IsEventStream(string? mediaType)
        => string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);

    internal static StreamPipelineSettings BuildSettings(RelayRequestFeature? feature)
    {
        if (feature is null || !feature.IsChatCompletion)
        {
            return new StreamPipelineSettings { Kind = StreamKind.PassThrough };
        }

        var cadence = feature.Route.Cadence;
        var interval = feature.FlushIntervalMs ?? cadence.IntervalMs;
        return new StreamPipelineSettings
        {
            Kind = StreamKind.ChatCompletions,
            CoalescingEnabled = cadence.Enabled || feature.ChunkSize is not null,
            MaxTokensPerFlush = feature.ChunkSize ?? cadence.MaxTokens,
            FlushInterval = TimeSpan.FromMilliseconds(interval),
            StripUsageChunk = feature.RelayRequestedUsage,
            StructuredOutput = feature.StructuredOutput,
        };
    }
}

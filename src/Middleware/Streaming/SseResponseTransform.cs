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
        if (upstream is null)
        {
            return;
        }

        if (!IsEventStream(upstream.Content.Headers.ContentType?.MediaType))
        {
            // The upstream answered; YARP copies the body. Only the hard maximum duration still applies.
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
            using var pipeline = new StreamEventPipeline(BuildSettings(feature), _time);
            feature?.Accounting = pipeline.Accounting;
            await _relay.RunAsync(http, upstream, pipeline, lifetime);
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
    internal static void MarkUnbuffered(HttpResponse response)
    {
        response.Headers["X-Accel-Buffering"] = "no";
        response.Headers[HeaderNames.CacheControl] = "no-cache, no-transform";
        response.Headers.ContentLength = null;
        response.Headers.Remove(HeaderNames.ContentEncoding);
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
        };
    }
}

using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Relay.Middleware.Resume;

/// <summary>
/// <see cref="ResumeOptions.MaxResponseSeconds"/> for one HTTP response of a resumable stream (the one that starts it
/// or a resuming one): when the response must end, and the block that ends it. Edge runtimes and load balancers cut a
/// response that lasts longer than they allow (the product spec: "Cloudflare Workers ... caps response duration at
/// 30 s on free / 60 s on paid"), mid-event and as a failure; Relay ends it first, between two events, as a normal end of
/// the body, and the client resumes with <c>Last-Event-ID</c>: the last event it got carries its <c>id:</c>.
/// </summary>
internal sealed class ResponseCap
{
    /// <summary>The smallest cap: below a second a client would spend more time reconnecting than reading.</summary>
    public const double MinSeconds = 1;

    /// <summary>The reconnection time Relay asks for when it ends a response at the cap.</summary>
    public const int RetryMilliseconds = 250;

    private readonly TimeProvider _time;
    private readonly long _startedAt;
    private readonly TimeSpan _limit;

    public ResponseCap(double seconds, TimeProvider time, long startedAt)
    {
        _time = time;
        _startedAt = startedAt;
        _limit = TimeSpan.FromSeconds(seconds);
    }

    /// <summary>
    /// The block that ends a capped response: a retry field only. WHATWG SSE: "If the field name is "retry": If the field
    /// value consists of only ASCII digits, then interpret the field value as an integer in base ten, and set the event
    /// stream's reconnection time to that integer"; a block without data dispatches no event ("If the data buffer is an
    /// empty string, set the data buffer and the event type buffer to the empty string and return"), so neither
    /// EventSource nor an SDK's parser sees an event, and the last event ID stays the last event's. EventSource
    /// reconnects when the body ends, after the reconnection time: a short one keeps the text flowing; not so short
    /// that clients hammer an instance that is away.
    /// </summary>
    public static ReadOnlySpan<byte> RetryBlock => "retry: 250\n\n"u8;

    /// <summary>How long the response may still last.</summary>
    public TimeSpan Remaining
    {
        get
        {
            var remaining = _limit - _time.GetElapsedTime(_startedAt);
            return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
        }
    }

    /// <summary>Whether the response must end now.</summary>
    public bool Reached => Remaining == TimeSpan.Zero;

    /// <summary>
    /// The cap for a response to <paramref name="request"/>, or null when there is none: the option is off, or the
    /// response cannot end before its connection does (HTTP/1.0 without a length ends the body by closing the connection).
    /// </summary>
    public static ResponseCap? For(double seconds, HttpRequest request, TimeProvider time, long startedAt)
        => seconds > 0 && !HttpProtocol.IsHttp10(request.Protocol) && !HttpProtocol.IsHttp09(request.Protocol) ? new ResponseCap(seconds, time, startedAt) : null;

    /// <summary>
    /// Before the headers of the response that starts a stream: on HTTP/1.1 the continuation must come on a new
    /// connection. That response ends while the generation goes on in its request, and HTTP/1.1 reads the next request
    /// on a connection only once the current request is done: a client that reused the connection would wait for the
    /// whole generation. (A resuming response ends with its request: its connection stays reusable.) HTTP/2 and HTTP/3
    /// end a stream by itself (END_STREAM) and forbid the header.
    /// </summary>
    public static void PrepareHeaders(HttpResponse response)
    {
        if (HttpProtocol.IsHttp11(response.HttpContext.Request.Protocol) && !response.HasStarted)
        {
            response.Headers[HeaderNames.Connection] = "close";
        }
    }

    /// <summary>A one-shot timer that fires when the cap is reached.</summary>
    public ITimer StartTimer(TimerCallback callback, object state) => _time.CreateTimer(callback, state, Remaining, Timeout.InfiniteTimeSpan);

    /// <summary>Writes <see cref="RetryBlock"/> and flushes: the caller then ends the response.</summary>
    public static ValueTask<FlushResult> WriteRetryAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        output.Write(RetryBlock);
        return output.FlushAsync(cancellationToken);
    }
}

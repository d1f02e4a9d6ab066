using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Streaming;

/// <summary>
/// Heartbeats before the upstream's first byte (route setting <c>Heartbeat:BeforeFirstByte</c>), for models with a
/// long time to first token behind proxies with short idle timeouts. YARP sends the client's status and headers only
/// once the upstream answered; when a heartbeat is due before that, this sends <c>200</c> and the SSE headers itself
/// and writes <c>: keep-alive</c> comments until the upstream answers.
/// </summary>
/// <remarks>
/// The trade-off: once the 200 went out, an upstream error (a 429, a refused connection, the first-token timeout)
/// can no longer be an HTTP status: it becomes a final SSE error event. An upstream that answers within the first
/// heartbeat interval still gets its own status through. While it is installed, the response feature YARP sees
/// keeps YARP's late status and header writes off the started response (they would throw).
/// </remarks>
internal sealed class EarlyStreamStart : IAsyncDisposable
{
    private const int Waiting = 0, StartedEarly = 1, HandedOver = 2, Stopped = 3;

    private readonly HttpContext _context;
    private readonly IHttpResponseFeature _real;
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly Lock _lock = new();
    private readonly CancellationToken _token;
    private ITimer? _timer;
    private int _state;

    private EarlyStreamStart(HttpContext context, IHttpResponseFeature real, CancellationToken token)
    {
        _context = context;
        _real = real;
        _token = token;
    }

    /// <summary>Whether the response was started before the upstream answered (every later error is an SSE event).</summary>
    public bool Started { get; private set; }

    /// <summary>Starts the heartbeat timer for this request.</summary>
    internal static EarlyStreamStart Install(HttpContext context, TimeSpan interval, TimeProvider time, CancellationToken token)
    {
        var real = context.Features.GetRequiredFeature<IHttpResponseFeature>();
        var start = new EarlyStreamStart(context, real, token);
        context.Features.Set<IHttpResponseFeature>(new GuardedResponseFeature(start, real));
        start._timer = time.CreateTimer(static s => _ = ((EarlyStreamStart)s!).BeatAsync(), start, interval, interval);
        return start;
    }

    /// <summary>Stops the heartbeats. When this returns, nothing of this class writes to the response any more.</summary>
    public async ValueTask StopAsync()
    {
        await _writing.WaitAsync(CancellationToken.None);
        try
        {
            lock (_lock)
            {
                _state = Stopped;
            }

            _timer?.Dispose();
        }
        finally
        {
            _writing.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _context.Features.Set(_real);
    }

    private async Task BeatAsync()
    {
        if (!await _writing.WaitAsync(0))
        {
            return;
        }

        try
        {
            lock (_lock)
            {
                if (_state == Waiting)
                {
                    _real.StatusCode = StatusCodes.Status200OK;
                    _real.Headers.ContentType = "text/event-stream; charset=utf-8";
                    SseResponseTransform.MarkUnbuffered(_real.Headers);
                    _state = StartedEarly;
                    Started = true;
                }
                else if (_state != StartedEarly)
                {
                    return;
                }
            }

            var output = _context.Response.BodyWriter;
            SseWriter.WriteComment(output, " keep-alive"u8);
            await output.FlushAsync(_token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The request is over or the client is gone: the relay's own paths report that.
        }
        finally
        {
            _writing.Release();
        }
    }

    /// <summary>YARP is about to copy the upstream's status: from now on the response is YARP's, unless it already started.</summary>
    private bool TakeOver()
    {
        lock (_lock)
        {
            if (_state == Waiting)
            {
                _state = HandedOver;
                _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }

            return !Started;
        }
    }

    /// <summary>The response feature YARP writes to: once the response started early, its status and headers go nowhere.</summary>
    private sealed class GuardedResponseFeature(EarlyStreamStart owner, IHttpResponseFeature real) : IHttpResponseFeature
    {
        private readonly HeaderDictionary _discarded = new();
        private int _discardedStatus = StatusCodes.Status200OK;

        public int StatusCode
        {
            get => owner.Started ? _discardedStatus : real.StatusCode;
            set
            {
                if (owner.TakeOver())
                {
                    real.StatusCode = value;
                }
                else
                {
                    _discardedStatus = value;
                }
            }
        }

        public string? ReasonPhrase
        {
            get => owner.Started ? null : real.ReasonPhrase;
            set
            {
                if (!owner.Started)
                {
                    real.ReasonPhrase = value;
                }
            }
        }

        public IHeaderDictionary Headers
        {
            get => owner.Started ? _discarded : real.Headers;
            set
            {
                if (!owner.Started)
                {
                    real.Headers = value;
                }
            }
        }

        [Obsolete("Use IHttpResponseBodyFeature.")]
        public Stream Body
        {
            get => real.Body;
            set => real.Body = value;
        }

        public bool HasStarted => real.HasStarted;

        public void OnStarting(Func<object, Task> callback, object state) => real.OnStarting(callback, state);

        public void OnCompleted(Func<object, Task> callback, object state) => real.OnCompleted(callback, state);
    }
}

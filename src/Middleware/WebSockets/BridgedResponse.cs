using Microsoft.AspNetCore.Http;
using Relay.Middleware.Cadence;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.WebSockets;

/// <summary>How a response was ended by the session (rather than by its upstream).</summary>
internal enum ResponseEnd
{
    /// <summary>Not ended by the session: it completed or failed on its own.</summary>
    None,

    /// <summary><c>response.cancel</c>.</summary>
    Cancelled,

    /// <summary>An appended message cut the response over to a new one.</summary>
    Interrupted,

    /// <summary>The socket is gone; nobody is told.</summary>
    SessionEnded,
}

/// <summary>One response of a WebSocket session: its bridged upstream request, and what it delivered.</summary>
internal sealed class BridgedResponse : IDisposable
{
    private int _end;
    private byte[]? _error;

    public BridgedResponse(string id, UpstreamRequestTemplate template, byte[] body, int maxQueuedBytes, CancellationToken session)
    {
        Id = id;
        Lifetime = new BridgedRequestLifetime(session);
        Output = new BridgedResponseFeature(maxQueuedBytes);
        Context = template.Create(body, Lifetime, Output);

        // The stream's event pipeline writes WebSocket messages, not SSE (SseResponseTransform picks the sink up).
        Sink = new WebSocketFrameSink(id);
        Context.Features.Set<IStreamEventSink>(Sink);
    }

    /// <summary>Relay's response id (<c>resp_...</c>).</summary>
    public string Id { get; }

    /// <summary>The bridged request's client side (cancel it to cancel the upstream).</summary>
    public BridgedRequestLifetime Lifetime { get; }

    /// <summary>The bridged request's response: status, headers, and the body pipe the session reads.</summary>
    public BridgedResponseFeature Output { get; }

    /// <summary>The bridged request.</summary>
    public HttpContext Context { get; }

    /// <summary>Runs the response; completes after <c>response.done</c> was sent (or could not be).</summary>
    public Task Completion { get; set; } = Task.CompletedTask;

    /// <summary>How the session ended the response, if it did.</summary>
    public ResponseEnd End => (ResponseEnd)Volatile.Read(ref _end);

    /// <summary>Where the response's event pipeline writes its messages.</summary>
    public WebSocketFrameSink Sink { get; }

    /// <summary>The text of choice 0 as delivered to the client (UTF-8), for the conversation and <c>response.done</c>.</summary>
    public PooledByteBuffer Text => Sink.Text;

    /// <summary>The error object that ended the response (an error event or an error response), raw JSON.</summary>
    public byte[]? Error
    {
        get => _error ?? Sink.Error;
        set => _error = value;
    }

    /// <summary>
    /// Set just before <c>response.done</c> is sent: a client that reacts to it at once must find the response
    /// over, not "in progress" (the session then waits the few instructions until <see cref="Completion"/>).
    /// </summary>
    public volatile bool Finishing;

    /// <summary>Set when the queued frames must be dropped (the client stopped reading).</summary>
    public bool Discard { get; set; }

    /// <summary>Ends the response for <paramref name="end"/> (the first reason wins) and cancels its upstream at once.</summary>
    public void Cancel(ResponseEnd end)
    {
        Interlocked.CompareExchange(ref _end, (int)end, (int)ResponseEnd.None);
        Lifetime.Cancel();
    }

    public void Dispose()
    {
        Lifetime.Dispose();
        Sink.Dispose();
    }
}

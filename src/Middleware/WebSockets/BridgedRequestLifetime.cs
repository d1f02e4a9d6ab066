using Microsoft.AspNetCore.Http.Features;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The client side of one bridged upstream request. Its <see cref="RequestAborted"/> plays the part of Kestrel's:
/// it fires when the response is cancelled, interrupted by an appended message, or the socket is gone, and the
/// request's <c>StreamLifetime</c> turns it into an upstream cancellation at once, as for an SSE client that left.
/// <see cref="Abort"/> ends this response only: the socket lives on.
/// </summary>
internal sealed class BridgedRequestLifetime : IHttpRequestLifetimeFeature, IHttpRequestBodyDetectionFeature, IDisposable
{
    private readonly CancellationTokenSource _cts;

    public BridgedRequestLifetime(CancellationToken session)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(session);
        RequestAborted = _cts.Token;
    }

    public CancellationToken RequestAborted { get; set; }

    /// <summary>The body is the response's JSON request (YARP asks before it forwards one).</summary>
    public bool CanHaveBody => true;

    public void Abort() => Cancel();

    /// <summary>Cancels the response (idempotent).</summary>
    public void Cancel()
    {
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose() => _cts.Dispose();
}

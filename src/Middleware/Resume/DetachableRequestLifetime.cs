using Microsoft.AspNetCore.Http.Features;

namespace Relay.Middleware.Resume;

/// <summary>
/// The request's lifetime as Relay's <see cref="Cancellation.StreamLifetime"/> sees it on a route with resumable streams:
/// the client's disconnect cancels the request, as on every route, unless the request's stream is resumable, whose
/// client may come back (<see cref="ResumableStream.Detach"/> decides when it stops instead).
/// </summary>
internal sealed class DetachableRequestLifetime : IHttpRequestLifetimeFeature, IDisposable
{
    private readonly IHttpRequestLifetimeFeature _client;
    private readonly Func<ResumableStream?> _stream;
    private readonly CancellationTokenSource _cts = new();
    private readonly CancellationTokenRegistration _registration;

    public DetachableRequestLifetime(IHttpRequestLifetimeFeature client, Func<ResumableStream?> stream)
    {
        _client = client;
        _stream = stream;
        _registration = client.RequestAborted.UnsafeRegister(static s => ((DetachableRequestLifetime)s!).OnClientGone(), this);
    }

    public CancellationToken RequestAborted
    {
        get => _cts.Token;
        set => throw new NotSupportedException("Relay owns the request's cancellation.");
    }

    public void Abort() => _client.Abort();

    public void Dispose()
    {
        _registration.Dispose();
        _cts.Dispose();
    }

    private void OnClientGone()
    {
        if (_stream() is { } stream)
        {
            stream.Detach();
            return;
        }

        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}

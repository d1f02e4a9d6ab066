using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.ResponseCompression;
using Relay.Middleware.Requests;
using Relay.Middleware.WebSockets;

namespace Relay.Middleware.Compression;

/// <summary>
/// ASP.NET Core's response compression, on the routes that opt in (<c>Compression:Enabled</c>), in YARP's proxy
/// pipeline after Relay's step so that the route's settings are known. The framework's middleware does the work:
/// it honours <c>Accept-Encoding</c>, adds <c>Vary: Accept-Encoding</c>, leaves a response that already has a
/// <c>Content-Encoding</c> (an upstream that compressed) alone, and, because Relay's SSE relay disables buffering,
/// flushes the compressor (a sync flush: gzip's Z_SYNC_FLUSH, Brotli's flush) on every write, so each event
/// reaches the client when Relay flushes it rather than when a compressor block fills. WebSocket bridge responses
/// are never compressed here: their events become WebSocket frames.
/// </summary>
internal sealed class RouteResponseCompressionMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ResponseCompressionMiddleware _compression;

    public RouteResponseCompressionMiddleware(RequestDelegate next, IResponseCompressionProvider provider)
    {
        _next = next;
        _compression = new ResponseCompressionMiddleware(next, provider);
    }

    public Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<RelayRequestFeature>() is not { Route.Compression.Enabled: true }
            || context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>() is BridgedResponseFeature)
        {
            return _next(context);
        }

        return _compression.Invoke(context);
    }
}

using Microsoft.AspNetCore.Http.Features;
using Relay.Middleware.Requests;
using Relay.Middleware.Streaming;
using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Accounting;

/// <summary>
/// Installs an <see cref="AcceptedDeliveryBody"/> on every relayed event stream, before the SSE transform starts
/// writing it, so that the stream's usage record counts as delivered only what the server accepted for the client.
/// </summary>
internal sealed class AcceptedDeliveryTransform : ResponseTransform
{
    public static readonly AcceptedDeliveryTransform Instance = new();

    public override ValueTask ApplyAsync(ResponseTransformContext context)
    {
        var http = context.HttpContext;
        if (context.ProxyResponse is { } upstream
            && SseResponseTransform.IsEventStream(upstream.Content.Headers.ContentType?.MediaType)
            && http.Features.Get<RelayRequestFeature>() is { } request
            && http.Features.Get<IHttpResponseBodyFeature>() is { } body and not AcceptedDeliveryBody)
        {
            http.Features.Set<IHttpResponseBodyFeature>(new AcceptedDeliveryBody(body, request));
        }

        return ValueTask.CompletedTask;
    }
}

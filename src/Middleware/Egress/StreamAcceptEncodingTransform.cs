using Microsoft.Net.Http.Headers;
using Relay.Middleware.Requests;
using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Egress;

/// <summary>
/// A streaming chat request asks the upstream for <c>Accept-Encoding: identity</c> instead of the client's codings.
/// Removing the header would not do: RFC 9110 §12.5.3, "If no Accept-Encoding header field is in the request, any
/// content coding is considered acceptable by the user agent", while "identity" is "a synonym for 'no encoding'".
/// Relay parses the upstream's event stream token by token; an upstream that gzipped it, as YARP would let it by
/// forwarding the client's header, would be parsed as garbage. Relay's own response compression
/// (<c>Compression:Enabled</c>) still reads the client's header, which this leaves on the incoming request.
/// </summary>
internal sealed class StreamAcceptEncodingTransform : RequestTransform
{
    private const string Identity = "identity";

    public static StreamAcceptEncodingTransform Instance { get; } = new();

    public override ValueTask ApplyAsync(RequestTransformContext context)
    {
        if (context.HttpContext.Features.Get<RelayRequestFeature>() is { Stream: true, IsChatCompletion: true })
        {
            RemoveHeader(context, HeaderNames.AcceptEncoding);
            AddHeader(context, HeaderNames.AcceptEncoding, Identity);
        }

        return ValueTask.CompletedTask;
    }
}

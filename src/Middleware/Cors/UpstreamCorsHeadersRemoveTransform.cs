using Yarp.ReverseProxy.Transforms;

namespace Relay.Middleware.Cors;

/// <summary>
/// Removes the upstream's <c>Access-Control-*</c> response headers: Relay owns CORS. An upstream that answers
/// <c>Access-Control-Allow-Origin: *</c> (OpenAI-compatible servers often do) would otherwise open a route with
/// CORS off to every origin, and hand its <c>*</c> to an origin Relay's own policy refused (the CORS middleware
/// adds no header for a refused origin, so the upstream's would stay). Relay's own CORS headers are added when the
/// response starts, after this transform. A route with <c>Cors:PassUpstreamHeaders</c> does not get it.
/// </summary>
internal sealed class UpstreamCorsHeadersRemoveTransform : ResponseTransform
{
    public static readonly UpstreamCorsHeadersRemoveTransform Instance = new();

    private const string Prefix = "Access-Control-";

    public override ValueTask ApplyAsync(ResponseTransformContext context)
    {
        var response = context.HttpContext.Response;
        if (response.HasStarted)
        {
            // An early start (heartbeats before the first byte) sent the headers before the upstream answered.
            return ValueTask.CompletedTask;
        }

        List<string>? names = null;
        foreach (var (name, _) in response.Headers)
        {
            if (name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
            {
                (names ??= []).Add(name);
            }
        }

        if (names is not null)
        {
            foreach (var name in names)
            {
                response.Headers.Remove(name);
            }
        }

        return ValueTask.CompletedTask;
    }
}

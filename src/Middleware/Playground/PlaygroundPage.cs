using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Relay.Middleware.Playground;

/// <summary>
/// The playground: one static page (plain HTML and JavaScript, embedded in this assembly, no front-end build)
/// where a person types a prompt and watches the reply stream with <c>EventSource</c> and a ticket, or with
/// <c>fetch()</c> and a <c>ReadableStream</c> reader.
/// </summary>
internal static class PlaygroundPage
{
    private static readonly Lazy<byte[]> Html = new(static () =>
    {
        using var stream = typeof(PlaygroundPage).Assembly.GetManifestResourceStream("Relay.Middleware.Playground.playground.html")
            ?? throw new InvalidOperationException("The playground page is not embedded in Relay.Middleware.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static async Task WriteAsync(HttpContext context)
    {
        var html = Html.Value;
        context.Response.ContentType = "text/html; charset=utf-8";
        context.Response.Headers[HeaderNames.CacheControl] = "no-cache";
        // The page loads nothing from elsewhere: a strict policy costs nothing.
        context.Response.Headers[HeaderNames.ContentSecurityPolicy] = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:";
        context.Response.ContentLength = html.Length;
        await context.Response.Body.WriteAsync(html, context.RequestAborted);
    }
}

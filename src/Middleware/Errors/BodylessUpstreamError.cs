using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;

namespace Relay.Middleware.Errors;

/// <summary>
/// An upstream error with no body (a framework's bare 405 for <c>GET /v1/chat/completions</c>, a 404 for an unknown
/// path) gets an OpenAI error body, so that clients, which read the error from the body, have one to read. The
/// status and the upstream's headers (<c>Allow</c>, <c>Retry-After</c>) stay as the upstream sent them; a body the
/// upstream did send is passed on unchanged.
/// </summary>
internal static class BodylessUpstreamError
{
    /// <summary>
    /// Gives the upstream's error response an OpenAI error body when it has none. Call before YARP copies the body
    /// (from a response transform): the replacement becomes <paramref name="upstream"/>'s content.
    /// </summary>
    public static async ValueTask ApplyAsync(HttpContext context, HttpResponseMessage upstream, CancellationToken cancellationToken)
    {
        var status = (int)upstream.StatusCode;
        if (status < 400 || HttpMethods.IsHead(context.Request.Method) || upstream.Content.Headers.ContentLength > 0)
        {
            return;
        }

        if (upstream.Content.Headers.ContentLength is null)
        {
            // The length is unknown (chunked, or HTTP/2 without content-length): look at the first bytes without
            // consuming them. Error bodies are small, and nothing is sent to the client before the body is copied.
            var reader = PipeReader.Create(await upstream.Content.ReadAsStreamAsync(cancellationToken));
            var result = await reader.ReadAsync(cancellationToken);
            var empty = result.IsCompleted && result.Buffer.IsEmpty;
            reader.AdvanceTo(result.Buffer.Start);
            if (!empty)
            {
                upstream.Content = new StreamContent(reader.AsStream());
                return;
            }

            await reader.CompleteAsync();
        }

        var phrase = ReasonPhrases.GetReasonPhrase(status);
        var message = $"The upstream answered {status}{(phrase.Length > 0 ? " " + phrase : "")} to {context.Request.Method} {context.Request.Path}, with no body.";
        var body = new ArrayBufferWriter<byte>(256);
        OpenAIError.WriteObject(body, message, status < 500 ? RelayErrorTypes.InvalidRequest : RelayErrorTypes.UpstreamError, status < 500 ? null : "upstream_error");
        upstream.Content.Dispose();
        upstream.Content = new ByteArrayContent(body.WrittenSpan.ToArray());
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.WrittenCount;
    }
}

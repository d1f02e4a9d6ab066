using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Relay.Middleware.Errors;

/// <summary>
/// Errors in the client's language: the OpenAI error envelope <c>{"error":{"message","type","code"}}</c>,
/// as a JSON response before the first byte.
/// </summary>
internal static class OpenAIError
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes the error object (without any framing) to <paramref name="output"/>.</summary>
    public static void WriteObject(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
    {
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        writer.WriteStartObject();
        writer.WriteStartObject("error");
        writer.WriteString("message", message);
        writer.WriteString("type", type);
        if (param is null)
        {
            writer.WriteNull("param");
        }
        else
        {
            writer.WriteString("param", param);
        }

        if (code is null)
        {
            writer.WriteNull("code");
        }
        else
        {
            writer.WriteString("code", code);
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }

    /// <summary>
    /// Replaces whatever response was being prepared with an OpenAI-style JSON error. Only valid before the
    /// response has started; returns false (and writes nothing) when it has.
    /// </summary>
    public static async Task<bool> TryWriteResponseAsync(HttpContext context, int statusCode, string message, string type, string? code, int? retryAfterSeconds = null)
    {
        if (context.Response.HasStarted)
        {
            return false;
        }

        context.Response.Clear();
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json";
        context.Response.Headers[HeaderNames.CacheControl] = "no-store";
        if (retryAfterSeconds is { } retryAfter)
        {
            // Set after Clear(), which would drop a Retry-After set before the call.
            context.Response.Headers.RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        WriteObject(buffer, message, type, code);
        context.Response.ContentLength = buffer.WrittenCount;
        try
        {
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client is gone; there is nobody to tell.
        }

        return true;
    }
}

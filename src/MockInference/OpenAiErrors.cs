using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>OpenAI-style errors: <c>{"error":{"message","type","param","code"}}</c>.</summary>
internal static class OpenAiErrors
{
    public const string InvalidRequest = "invalid_request_error";
    public const string ServerError = "server_error";

    public static void WriteErrorObject(Utf8JsonWriter json, string message, string type, string? code, string? param)
    {
        json.WriteStartObject();
        json.WriteStartObject("error"u8);
        json.WriteString("message"u8, message);
        json.WriteString("type"u8, type);
        if (param is null)
        {
            json.WriteNull("param"u8);
        }
        else
        {
            json.WriteString("param"u8, param);
        }

        if (code is null)
        {
            json.WriteNull("code"u8);
        }
        else
        {
            json.WriteString("code"u8, code);
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>Writes an error response at once: status and headers go out before any simulated delay.</summary>
    public static async Task WriteAsync(
        HttpContext context, MockRequestRecord? record, int status, string message, string type, string? code, string? param)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        if (status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
        {
            response.Headers.RetryAfter = "1";
        }

        using (var json = new Utf8JsonWriter(response.BodyWriter, ChunkWriter.WriterOptions))
        {
            WriteErrorObject(json, message, type, code, param);
        }

        try
        {
            await response.BodyWriter.FlushAsync(context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // The client left; the record below still says what was sent.
        }

        if (record is not null)
        {
            var now = MonotonicClock.NowMicroseconds();
            lock (record.Gate)
            {
                record.HttpStatus = status;
                record.FirstByteUs ??= now;
                record.CompletedUs = now;
                record.Status = MockRequestStatus.Error;
            }
        }
    }

    /// <summary>The error an <c>x-mock-status</c> request gets, worded like the real thing.</summary>
    public static (string Message, string Type, string? Code) ForStatus(int status) => status switch
    {
        429 => ("Rate limit reached (simulated by x-mock-status).", "requests", "rate_limit_exceeded"),
        503 => ("The server is overloaded or not ready yet (simulated by x-mock-status).", ServerError, "service_unavailable"),
        401 => ("Incorrect API key provided (simulated by x-mock-status).", InvalidRequest, "invalid_api_key"),
        404 => ("The model does not exist (simulated by x-mock-status).", InvalidRequest, "model_not_found"),
        >= 500 => ("The server had an error while processing your request (simulated by x-mock-status).", ServerError, null),
        _ => ("The request was rejected (simulated by x-mock-status).", InvalidRequest, null),
    };
}

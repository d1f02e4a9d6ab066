using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.Accounting;
using Relay.Middleware.Errors;

namespace Relay.Middleware.WebSockets;

/// <summary>The JSON pieces of the server messages of docs/websocket-protocol.md.</summary>
internal static class WebSocketMessages
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>An OpenAI error object (the inner object, without the <c>{"error": ...}</c> envelope), raw JSON.</summary>
    public static byte[] ErrorObject(string message, string type, string? code, string? param = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        OpenAIError.WriteObject(buffer, message, type, code, param);
        // WriteObject writes the envelope {"error":{...}}: keep the inner object.
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        var error = document.RootElement.GetProperty("error");
        return ToBytes(w => error.WriteTo(w));
    }

    /// <summary>What <paramref name="write"/> writes, as UTF-8 JSON (non-ASCII unescaped).</summary>
    public static byte[] ToBytes(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes a number, or null when there is none.</summary>
    private static void WriteNullable(Utf8JsonWriter writer, string name, long? value)
    {
        if (value is { } v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    /// <summary>The <c>error</c> object of an OpenAI error body, raw JSON; null when the body is not one.</summary>
    public static byte[]? ErrorObjectOf(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!JsonDocument.TryParseValue(ref reader, out var document))
            {
                return null;
            }

            using (document)
            {
                return document.RootElement.ValueKind == JsonValueKind.Object
                    && document.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object
                    ? ToBytes(w => error.WriteTo(w))
                    : null;
            }
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The members of an <c>error</c> message: the message it answers, the response it ended, the HTTP status.</summary>
    public static void WriteError(Utf8JsonWriter writer, string? eventId, string? responseId, byte[] error, int? status = null)
    {
        writer.WriteString("type", "error");
        if (eventId is not null)
        {
            writer.WriteString("event_id", eventId);
        }

        if (responseId is not null)
        {
            writer.WriteString("response_id", responseId);
        }

        if (status is { } s)
        {
            writer.WriteNumber("status", s);
        }

        writer.WritePropertyName("error");
        writer.WriteRawValue(error);
    }

    /// <summary>The members of a <c>conversation.item.created</c> message.</summary>
    public static void WriteItemCreated(Utf8JsonWriter writer, JsonObject item, string? eventId)
    {
        writer.WriteString("type", "conversation.item.created");
        if (eventId is not null)
        {
            writer.WriteString("event_id", eventId);
        }

        writer.WritePropertyName("item");
        item.WriteTo(writer);
    }

    /// <summary>
    /// The members of a <c>response.done</c> message: how the response ended, its text as delivered, its usage (the
    /// figures of its StreamEnded record), and the upstream's status and request id.
    /// </summary>
    public static void WriteResponseDone(Utf8JsonWriter writer, BridgedResponse response, string status, string? detail, StreamUsageRecord? usage,
        int httpStatus, string requestId)
    {
        writer.WriteString("type", "response.done");
        writer.WriteStartObject("response");
        writer.WriteString("id", response.Id);
        writer.WriteString("status", status);
        if (detail is null)
        {
            writer.WriteNull("status_details");
        }
        else
        {
            writer.WriteStartObject("status_details");
            writer.WriteString("reason", detail);
            if (response.Error is { } error && status == "failed")
            {
                writer.WritePropertyName("error");
                writer.WriteRawValue(error);
            }

            writer.WriteEndObject();
        }

        writer.WriteString("output_text", response.Text.WrittenSpan);
        writer.WriteStartObject("usage");
        WriteNullable(writer, "prompt_tokens", usage?.PromptTokens);
        var completion = usage?.CompletionTokensGenerated ?? 0;
        writer.WriteNumber("completion_tokens", completion);
        WriteNullable(writer, "total_tokens", usage?.PromptTokens + completion);
        writer.WriteNumber("completion_tokens_delivered", usage?.CompletionTokensDelivered ?? 0);
        writer.WriteBoolean("completion_tokens_counted", usage?.CompletionTokensCounted ?? true);
        writer.WriteEndObject();
        writer.WriteStartObject("upstream");
        writer.WriteNumber("status", httpStatus);
        if (requestId.Length > 0)
        {
            writer.WriteString("request_id", requestId);
        }
        else
        {
            writer.WriteNull("request_id");
        }

        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}

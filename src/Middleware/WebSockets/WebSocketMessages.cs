using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
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
    public static void WriteNullable(Utf8JsonWriter writer, string name, long? value)
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
}

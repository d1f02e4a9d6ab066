using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Relay.Middleware.Cadence;
using Relay.Middleware.Errors;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The WebSocket frame sink of one bridged response: the stream's event pipeline writes its events here as the
/// server messages of docs/websocket-protocol.md (a chunk as <c>response.chunk</c>, its JSON byte for byte; an error
/// object as <c>error</c>; any other event as <c>response.event</c>; <c>[DONE]</c>, comments, ids and retries as
/// nothing: <c>response.done</c> follows from the session). Each message goes into the response's body pipe behind a
/// 4-byte length, and the session sends it as one text frame: Relay's own output is never parsed a second time.
/// </summary>
/// <remarks>
/// It also keeps what the session needs when the response ends: the text of choice 0 as delivered (for the
/// conversation and <c>response.done</c>), and the error object that ended it.
/// </remarks>
internal sealed class WebSocketFrameSink : IStreamEventSink, IDisposable
{
    /// <summary>The length prefix of each message in the body pipe.</summary>
    public const int PrefixLength = sizeof(int);

    private readonly string _responseId;
    private readonly byte[] _responseIdBytes;
    private readonly ArrayBufferWriter<byte> _message = new(4096);

    public WebSocketFrameSink(string responseId)
    {
        _responseId = responseId;
        _responseIdBytes = Encoding.UTF8.GetBytes(responseId);
    }

    /// <summary>The text of choice 0 as delivered (UTF-8, whole characters: the pipeline repaired it).</summary>
    public PooledByteBuffer Text { get; } = new(1024);

    /// <summary>The error object (raw JSON) of the first error event written, if any.</summary>
    public byte[]? Error { get; private set; }

    public bool CopiesPassThroughBytes => false;

    public void WriteChunk(IBufferWriter<byte> output, ReadOnlySpan<byte> json, int choice, DeltaKind kind, ReadOnlySpan<byte> text)
    {
        if (choice == 0 && kind == DeltaKind.Content)
        {
            Text.Append(text);
        }

        WriteChunkMessage(output, json);
    }

    public void WriteUpstreamError(IBufferWriter<byte> output, ReadOnlySpan<byte> json)
    {
        byte[]? error = null;
        _message.ResetWrittenCount();
        try
        {
            var reader = new Utf8JsonReader(json);
            if (JsonDocument.TryParseValue(ref reader, out var document))
            {
                using (document)
                {
                    if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("error", out var element))
                    {
                        error = WebSocketMessages.ToBytes(w => element.WriteTo(w));
                        using var writer = new Utf8JsonWriter(_message);
                        writer.WriteStartObject();
                        writer.WriteString("type", "error");
                        writer.WriteString("response_id", _responseId);
                        writer.WritePropertyName("error");
                        element.WriteTo(writer);
                        writer.WriteEndObject();
                    }
                }
            }
        }
        catch (JsonException)
        {
        }

        if (error is null)
        {
            // Not an error object after all: the chunk as it came.
            WriteChunkMessage(output, json);
            return;
        }

        Error ??= error;
        Frame(output);
    }

    public void WriteError(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
    {
        var body = new ArrayBufferWriter<byte>(256);
        OpenAIError.WriteObject(body, message, type, code, param);
        WriteUpstreamError(output, body.WrittenSpan);
    }

    public void WriteDone(IBufferWriter<byte> output)
    {
        // response.done is the session's, once the response's usage is recorded.
    }

    public void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data, ReadOnlySpan<byte> id, bool hasId)
    {
        if (eventType.IsEmpty && ChatChunkReader.TryRead(data, out var info))
        {
            // A chunk the pipeline did not interpret (it carried an id, or the stream is not rewritten).
            if (info.HasError)
            {
                WriteUpstreamError(output, data);
            }
            else
            {
                WriteChunkMessage(output, data);
            }

            return;
        }

        _message.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(_message))
        {
            writer.WriteStartObject();
            writer.WriteString("type", "response.event");
            writer.WriteString("response_id", _responseId);
            if (eventType.IsEmpty)
            {
                writer.WriteNull("event");
            }
            else
            {
                writer.WriteString("event", eventType);
            }

            writer.WriteString("data", data);
            writer.WriteEndObject();
        }

        Frame(output);
    }

    public void WriteComment(IBufferWriter<byte> output, ReadOnlySpan<byte> text)
    {
    }

    public void WriteId(IBufferWriter<byte> output, ReadOnlySpan<byte> id)
    {
    }

    public void WriteRetry(IBufferWriter<byte> output, long milliseconds)
    {
    }

    /// <summary>Takes the next whole message off the body pipe's bytes, if they hold one.</summary>
    public static bool TryReadMessage(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message)
    {
        message = default;
        Span<byte> prefix = stackalloc byte[PrefixLength];
        if (buffer.Length < PrefixLength)
        {
            return false;
        }

        buffer.Slice(0, PrefixLength).CopyTo(prefix);
        var length = BinaryPrimitives.ReadInt32LittleEndian(prefix);
        if (buffer.Length - PrefixLength < length)
        {
            return false;
        }

        message = buffer.Slice(PrefixLength, length);
        buffer = buffer.Slice(message.End);
        return true;
    }

    private void WriteChunkMessage(IBufferWriter<byte> output, ReadOnlySpan<byte> json)
    {
        var length = "{\"type\":\"response.chunk\",\"response_id\":\""u8.Length + _responseIdBytes.Length + "\",\"chunk\":"u8.Length + json.Length + 1;
        var span = output.GetSpan(PrefixLength + length);
        BinaryPrimitives.WriteInt32LittleEndian(span, length);
        var at = PrefixLength;
        at += Copy("{\"type\":\"response.chunk\",\"response_id\":\""u8, span[at..]);
        at += Copy(_responseIdBytes, span[at..]);
        at += Copy("\",\"chunk\":"u8, span[at..]);
        at += Copy(json, span[at..]);
        span[at++] = (byte)'}';
        output.Advance(at);
    }

    private void Frame(IBufferWriter<byte> output)
    {
        var span = output.GetSpan(PrefixLength + _message.WrittenCount);
        BinaryPrimitives.WriteInt32LittleEndian(span, _message.WrittenCount);
        _message.WrittenSpan.CopyTo(span[PrefixLength..]);
        output.Advance(PrefixLength + _message.WrittenCount);
    }

    public void Dispose() => Text.Dispose();

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        source.CopyTo(destination);
        return source.Length;
    }
}

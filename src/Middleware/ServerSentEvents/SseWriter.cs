using System.Buffers;
using System.Buffers.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Relay.Middleware.ServerSentEvents;

/// <summary>Writes canonical <c>text/event-stream</c> framing to an <see cref="IBufferWriter{T}"/>.</summary>
internal static class SseWriter
{
    /// <summary>
    /// Writes a final OpenAI-style error event: <c>data: {"error":{"message":...,"type":...,"code":...}}</c>
    /// followed by a blank line. A null <paramref name="code"/> is written as JSON <c>null</c>.
    /// </summary>
    public static void WriteErrorEvent(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(type);

        output.Write("data: "u8);
        Errors.OpenAIError.WriteObject(output, message, type, code, param);
        output.Write("\n\n"u8);
    }

    /// <summary>
    /// Writes one event: <c>event:</c> when a type is set, one <c>data:</c> line per LF-separated line of
    /// <paramref name="data"/>, <c>id:</c> when the event carried one, then the dispatching blank line.
    /// </summary>
    internal static void WriteEvent(
        IBufferWriter<byte> output, ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data, ReadOnlySpan<byte> id, bool writeId)
    {
        if (!eventType.IsEmpty)
        {
            WriteLine(output, "event: "u8, eventType);
        }

        // WHATWG joins data lines with LF, so an LF inside data must become a new data line again.
        while (true)
        {
            var lf = data.IndexOf((byte)'\n');
            if (lf < 0)
            {
                WriteLine(output, "data: "u8, data);
                break;
            }

            WriteLine(output, "data: "u8, data[..lf]);
            data = data[(lf + 1)..];
        }

        if (writeId)
        {
            WriteLine(output, "id: "u8, id);
        }

        output.Write("\n"u8);
    }

    /// <summary>Writes a data-only event.</summary>
    internal static void WriteData(IBufferWriter<byte> output, ReadOnlySpan<byte> data) =>
        WriteEvent(output, default, data, default, writeId: false);

    /// <summary>Writes a comment as it came (<paramref name="text"/> is what followed the colon) and a blank line.</summary>
    internal static void WriteComment(IBufferWriter<byte> output, ReadOnlySpan<byte> text)
    {
        WriteLine(output, ":"u8, text);
        output.Write("\n"u8);
    }

    /// <summary>Writes an <c>id:</c> field in a block of its own (dispatches nothing, sets the last event ID).</summary>
    internal static void WriteId(IBufferWriter<byte> output, ReadOnlySpan<byte> id)
    {
        WriteLine(output, "id: "u8, id);
        output.Write("\n"u8);
    }

    /// <summary>Writes a <c>retry:</c> field in a block of its own (dispatches nothing, sets the reconnection time).</summary>
    internal static void WriteRetry(IBufferWriter<byte> output, long milliseconds)
    {
        var span = output.GetSpan(32);
        "retry: "u8.CopyTo(span);
        Utf8Formatter.TryFormat(milliseconds, span[7..], out var written);
        span[7 + written] = (byte)'\n';
        span[8 + written] = (byte)'\n';
        output.Advance(9 + written);
    }

    private static void WriteLine(IBufferWriter<byte> output, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> value)
    {
        var length = prefix.Length + value.Length + 1;
        var span = output.GetSpan(length);
        prefix.CopyTo(span);
        value.CopyTo(span[prefix.Length..]);
        span[length - 1] = (byte)'\n';
        output.Advance(length);
    }
}

using System.Buffers;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The SSE writer sink: every event as canonical <c>text/event-stream</c> (<see cref="SseWriter"/>), and streams Relay
/// does not rewrite as the upstream's bytes. Stateless: one instance serves every stream.
/// </summary>
internal sealed class SseEventSink : IStreamEventSink
{
    public static readonly SseEventSink Instance = new();

    private SseEventSink()
    {
    }

    public bool CopiesPassThroughBytes => true;

    public void WriteChunk(IBufferWriter<byte> output, ReadOnlySpan<byte> json, int choice, DeltaKind kind, ReadOnlySpan<byte> text)
        => SseWriter.WriteData(output, json);

    public void WriteUpstreamError(IBufferWriter<byte> output, ReadOnlySpan<byte> json) => SseWriter.WriteData(output, json);

    public void WriteError(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
        => SseWriter.WriteErrorEvent(output, message, type, code, param);

    public void WriteDone(IBufferWriter<byte> output) => SseWriter.WriteData(output, "[DONE]"u8);

    public void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data, ReadOnlySpan<byte> id, bool hasId)
        => SseWriter.WriteEvent(output, eventType, data, id, hasId);

    public void WriteComment(IBufferWriter<byte> output, ReadOnlySpan<byte> text) => SseWriter.WriteComment(output, text);

    public void WriteId(IBufferWriter<byte> output, ReadOnlySpan<byte> id) => SseWriter.WriteId(output, id);

    public void WriteRetry(IBufferWriter<byte> output, long milliseconds) => SseWriter.WriteRetry(output, milliseconds);
}

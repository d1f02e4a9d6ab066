using System.Buffers;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Where a stream's event pipeline writes its events (docs/design.md, step 5: "into an event sink: SSE into Kestrel's
/// response pipe, flushing each event, or WebSocket frames"). The pipeline decides what goes out and when; the sink
/// decides how it is framed, into the output the relay loop flushes. One sink per stream; called on the relay loop
/// only.
/// </summary>
internal interface IStreamEventSink
{
    /// <summary>
    /// Whether a stream Relay does not rewrite (<see cref="StreamKind.PassThrough"/>) goes out as the upstream's bytes.
    /// When false, its events are parsed and written one by one with <see cref="WriteEvent"/>.
    /// </summary>
    bool CopiesPassThroughBytes { get; }

    /// <summary>
    /// A <c>chat.completion.chunk</c>: its JSON (the upstream's, or the coalescer's splice of it), and the decoded text
    /// it delivers for one choice (<paramref name="choice"/> is -1 and <paramref name="text"/> empty when it delivers
    /// none, or several choices).
    /// </summary>
    void WriteChunk(IBufferWriter<byte> output, ReadOnlySpan<byte> json, int choice, DeltaKind kind, ReadOnlySpan<byte> text);

    /// <summary>The upstream's own error event (a chunk with an <c>error</c> object): the last event of the stream.</summary>
    void WriteUpstreamError(IBufferWriter<byte> output, ReadOnlySpan<byte> json);

    /// <summary>Relay's own final error (<see cref="Errors.RelayErrorTable"/>'s row): the last event of the stream.</summary>
    void WriteError(IBufferWriter<byte> output, string message, string type, string? code, string? param = null);

    /// <summary><c>data: [DONE]</c>: the stream is complete.</summary>
    void WriteDone(IBufferWriter<byte> output);

    /// <summary>Any other event, as it came: a typed event, one with an id, non-JSON data.</summary>
    void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data, ReadOnlySpan<byte> id, bool hasId);

    /// <summary>A comment (what followed the colon).</summary>
    void WriteComment(IBufferWriter<byte> output, ReadOnlySpan<byte> text);

    /// <summary>An <c>id:</c> field in a block of its own.</summary>
    void WriteId(IBufferWriter<byte> output, ReadOnlySpan<byte> id);

    /// <summary>A <c>retry:</c> field in a block of its own.</summary>
    void WriteRetry(IBufferWriter<byte> output, long milliseconds);
}

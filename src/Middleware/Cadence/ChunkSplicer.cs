using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Writes the chat chunks of one stream to its sink: an upstream chunk as it came, or a chunk spliced from a kept
/// envelope (the first merged token's event, byte for byte) with its text field, and its <c>logprobs</c> token list,
/// replaced. Every chunk leaves the pipeline through <see cref="WriteChunk"/>, with the decoded text it delivers for
/// one choice.
/// </summary>
internal sealed class ChunkSplicer : IDisposable
{
    private readonly IStreamEventSink _sink;
    private readonly PooledByteBuffer _scratch = new(1024);
    private readonly Utf8JsonWriter _json;

    public ChunkSplicer(IStreamEventSink sink)
    {
        _sink = sink;

        // Non-ASCII stays raw in the re-serialised text; SkipValidation lets one writer emit many lone values.
        _json = new Utf8JsonWriter(_scratch, new JsonWriterOptions
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            SkipValidation = true,
        });
    }

    /// <summary>
    /// Writes one chunk: <paramref name="json"/> delivers <paramref name="text"/> (decoded UTF-8) in the
    /// <paramref name="kind"/> field of <paramref name="choice"/> (-1 and empty when it delivers no text of one choice).
    /// </summary>
    /// <remarks>
    /// The one place every chunk passes with its choice's delivered text: where a per-choice observer of the text
    /// (structured output's partial-JSON parser) belongs.
    /// </remarks>
    public void WriteChunk(IBufferWriter<byte> output, ReadOnlySpan<byte> json, int choice, DeltaKind kind, ReadOnlySpan<byte> text)
        => _sink.WriteChunk(output, json, choice, kind, text);

    /// <summary>Writes <paramref name="json"/> with the string at <paramref name="field"/> replaced by <paramref name="text"/>.</summary>
    /// <remarks>
    /// <paramref name="parsed"/> (structured output's <c>,"parsed":...</c> member, or empty) goes right after the text
    /// field, so it lands next to <c>content</c> or <c>arguments</c>.
    /// </remarks>
    public void WriteReplaced(IBufferWriter<byte> output, ReadOnlySpan<byte> json, JsonStringRange field, ReadOnlySpan<byte> text, int choice, DeltaKind kind,
        ReadOnlySpan<byte> parsed = default)
    {
        _scratch.Clear();
        _scratch.Append(json[..field.Start]);
        AppendString(text);
        _scratch.Append(parsed);
        _scratch.Append(json[field.End..]);
        WriteChunk(output, _scratch.WrittenSpan, choice, kind, text);
    }

    /// <summary>As above, with the <c>logprobs</c> token list at <paramref name="list"/> replaced by <paramref name="items"/>.</summary>
    public void WriteReplaced(IBufferWriter<byte> output, ReadOnlySpan<byte> json, JsonStringRange field, ReadOnlySpan<byte> text,
        JsonStringRange list, ReadOnlySpan<byte> items, int choice, DeltaKind kind, ReadOnlySpan<byte> parsed = default)
    {
        _scratch.Clear();
        if (field.Start < list.Start)
        {
            _scratch.Append(json[..field.Start]);
            AppendString(text);
            _scratch.Append(parsed);
            _scratch.Append(json[field.End..list.Start]);
            AppendList(items);
            _scratch.Append(json[list.End..]);
        }
        else
        {
            _scratch.Append(json[..list.Start]);
            AppendList(items);
            _scratch.Append(json[list.End..field.Start]);
            AppendString(text);
            _scratch.Append(parsed);
            _scratch.Append(json[field.End..]);
        }

        WriteChunk(output, _scratch.WrittenSpan, choice, kind, text);
    }

    public void Dispose()
    {
        _json.Dispose();
        _scratch.Dispose();
    }

    private void AppendString(ReadOnlySpan<byte> text)
    {
        _json.Reset(_scratch);
        _json.WriteStringValue(text);
        _json.Flush();
    }

    private void AppendList(ReadOnlySpan<byte> items)
    {
        _scratch.Append((byte)'[');
        _scratch.Append(items);
        _scratch.Append((byte)']');
    }
}

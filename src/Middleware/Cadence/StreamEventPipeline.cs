using System.Buffers;
using System.Text;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The event pipeline of one stream: incremental SSE parsing, event transforms (coalescing, UTF-8 repair,
/// accounting), and an event sink that frames what goes out (canonical SSE, or the WebSocket bridge's messages).
/// Single consumer: not thread-safe.
/// </summary>
/// <remarks>
/// <para>
/// Cadence (product spec, "Chunk size &amp; flush cadence": "We flush an SSE chunk every ~20 ms or every 8 tokens,
/// whichever comes first"): consecutive text tokens of one choice (<c>delta.content</c>,
/// <c>delta.reasoning_content</c>/<c>reasoning</c>, <c>delta.refusal</c>, or the <c>arguments</c> of a continuing
/// tool call), with their <c>logprobs</c> token lists concatenated when they carry them, are merged
/// into one event (<see cref="ChoiceCoalescer"/>). The cadence is a throttle, not a delay: it limits how often a choice is flushed. A token that
/// arrives when the choice's last flush is about <see cref="StreamPipelineSettings.FlushInterval"/> old (three quarters of it: upstream pacing jitters) goes out
/// at once (a choice's first token always does); otherwise it waits until last flush + interval, or until
/// <see cref="StreamPipelineSettings.MaxTokensPerFlush"/> tokens have accumulated. An upstream slower than the
/// cadence is never delayed by it; a faster one is merged into at most one event per interval. Anything else (role, finish_reason, usage, logprobs, errors, non-JSON data,
/// <c>[DONE]</c>, comments, typed events) first flushes everything pending, then goes out in its place.
/// </para>
/// <para>
/// The merged event is the FIRST merged token's event with its text field replaced (<see cref="ChunkSplicer"/>): its envelope (id, created,
/// model, unknown fields such as <c>mock_emitted_us</c> or Azure's <c>content_filter_results</c>) is kept byte for
/// byte, so latency measured from an embedded timestamp is measured from the oldest token in the event. Fields of
/// the later tokens' envelopes are dropped; a chunk carrying anything beyond the text (a non-null <c>usage</c>, as
/// Perplexity sends on every chunk, a role, <c>logprobs</c> other than one token list for the merged field) is
/// never merged.
/// </para>
/// <para>
/// Unicode (product spec, "Partial-token handling": "Our SSE encoder buffers token boundaries that span an
/// incomplete UTF-8 sequence and flushes them together"): text is decoded leniently
/// (<see cref="LenientJsonStringDecoder"/>) and an incomplete trailing character is carried to the next token of
/// the choice. A character that is never completed (the choice finishes, as at a <c>length</c> cut inside a
/// character; another field starts; the stream completes, or ends with Relay's or the upstream's error) is
/// dropped: the client never sees a U+FFFD that the upstream did not send as a whole character. (Bytes that
/// cannot be a character at all, an incomplete one followed by more text, still become U+FFFD, as in any decoder.)
/// </para>
/// <para>
/// Grapheme clusters: when a flush is due, a trailing cluster that the next token will probably extend
/// (<see cref="GraphemeHold"/>: a ZWJ, half a flag, an emoji that a modifier or ZWJ may follow; a letter or mark of
/// a script whose consonants mostly take vowel signs (Indic, Thai, Lao, Tibetan, Myanmar, Khmer); a letter of a
/// choice whose text already had a combining diacritical mark) is held until that token comes, at most 500 ms after
/// the latest token; while the upstream outpaces the cadence, any trailing letter (which a combining mark may
/// follow) is held at most one interval. Text that ends otherwise is never held, so holding costs plain text (Latin
/// NFC text above all) nothing.
/// </para>
/// <para>
/// The pipeline itself routes: each parsed item goes to the coalescer, the splicer or the sink. A stream Relay does
/// not rewrite (<see cref="StreamKind.PassThrough"/>) takes <see cref="PassThroughEvents"/> instead: no JSON work.
/// </para>
/// </remarks>
internal sealed class StreamEventPipeline : IDisposable
{
    private readonly TimeProvider _timeProvider;
    private readonly IncrementalSseParser _parser = new();
    private readonly IStreamEventSink _sink;
    private readonly bool _rewrite;
    private readonly PassThroughEvents? _passThrough;
    private readonly ChunkSplicer _splicer;
    private readonly ChoiceCoalescer _coalescer;

    // Structured output: null unless the request asked for partial values or schema validation.
    private readonly StructuredOutput.StructuredStream? _structured;

    /// <summary>Creates a pipeline for one stream, writing SSE.</summary>
    public StreamEventPipeline(StreamPipelineSettings settings, TimeProvider timeProvider)
        : this(settings, timeProvider, sink: null)
    {
    }

    /// <summary>Creates a pipeline for one stream, writing its events to <paramref name="sink"/> (SSE when null).</summary>
    internal StreamEventPipeline(StreamPipelineSettings settings, TimeProvider timeProvider, IStreamEventSink? sink)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(timeProvider);
        Settings = settings;
        _timeProvider = timeProvider;
        _sink = sink ?? SseEventSink.Instance;
        _rewrite = settings.Kind == StreamKind.ChatCompletions;
        _passThrough = !_rewrite && _sink.CopiesPassThroughBytes ? new PassThroughEvents(_parser, Accounting) : null;
        _splicer = new ChunkSplicer(_sink);
        _structured = _rewrite ? settings.StructuredOutput?.CreateStream() : null;
        _coalescer = new ChoiceCoalescer(settings, timeProvider, _splicer, Accounting, _structured);
    }

    /// <summary>The settings in force.</summary>
    public StreamPipelineSettings Settings { get; }

    /// <summary>What the stream has seen and delivered.</summary>
    public StreamAccounting Accounting { get; } = new();

    /// <summary>When pending content must be flushed (a <see cref="TimeProvider.GetTimestamp"/> value), or null.</summary>
    public long? FlushDeadline => _coalescer.FlushDeadline;

    /// <summary>
    /// The first schema violation of the structured output; once set, nothing more is written and the stream must end
    /// (<see cref="Fail"/> with a <c>schema_violation</c> error).
    /// </summary>
    internal StructuredOutput.SchemaViolation? StructuredViolation => _structured?.Violation;

    /// <summary>Whether the input so far ends at an event boundary (no partial event held).</summary>
    public bool AtEventBoundary => _parser.AtEventBoundary;

    /// <summary>Consumes all of <paramref name="input"/>; writes what is due to <paramref name="output"/>.</summary>
    public void Process(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_passThrough is not null)
        {
            _passThrough.Process(input, output);
            return;
        }

        var now = _timeProvider.GetTimestamp();
        _coalescer.FlushDue(output, now);
        foreach (var segment in input)
        {
            _parser.Append(segment.Span);
            while (_parser.TryRead(out var kind))
            {
                Dispatch(output, kind, now);
            }
        }
    }

    /// <summary>Writes what is due at the current time.</summary>
    public void OnDeadline(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _coalescer.FlushDue(output, _timeProvider.GetTimestamp());
    }

    /// <summary>
    /// Whether a clean end of the upstream's body now would be a complete stream. A stream Relay does not rewrite
    /// always is: it passes through as sent, end included (a WHATWG client drops an unterminated last event
    /// itself). A chat stream is complete when it saw <c>[DONE]</c> or an upstream error event, counting a last
    /// <c>[DONE]</c> whose line is complete but whose blank line never came (see <see cref="Complete"/>).
    /// </summary>
    /// <remarks>
    /// Call only when the upstream ended cleanly. Any other unterminated last event is discarded, not dispatched,
    /// so the error event that follows comes right after the last whole event. Output may be written (the
    /// <c>[DONE]</c>).
    /// </remarks>
    public bool TryDispatchFinalEvent(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_passThrough is not null)
        {
            return true;
        }

        if (!_parser.AtLineBoundary)
        {
            // A line cut in the middle: its event is not known to be whole.
            return false;
        }

        EndOfInput(output);
        return Accounting.DoneSeen || Accounting.UpstreamErrorSeen;
    }

    /// <summary>
    /// The upstream ended cleanly: write everything still held. An unterminated last event is discarded, except a
    /// last <c>data: [DONE]</c> line (see <see cref="EndOfInput"/>). Pass-through streams are copied as they came.
    /// </summary>
    public void Complete(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_passThrough is not null)
        {
            _passThrough.Complete(output);
            return;
        }

        EndOfInput(output);
        _coalescer.FlushAll(output, endOfStream: true);
    }

    /// <summary>
    /// The stream must end with an error: write what is held, close any partial event, then a final
    /// error event (<see cref="Errors.RelayErrorTable"/>'s row).
    /// </summary>
    public void Fail(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_passThrough is not null)
        {
            _passThrough.DropPartialEvent();
        }
        else
        {
            _coalescer.FlushAll(output, endOfStream: true);
        }

        _parser.DiscardPartialEvent();
        _sink.WriteError(output, message, type, code, param);
        Accounting.EventsWritten++;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _parser.Dispose();
        _passThrough?.Dispose();
        _coalescer.Dispose();
        _splicer.Dispose();
        _structured?.Dispose();
    }

    private void Dispatch(IBufferWriter<byte> output, SseItemKind kind, long now)
    {
        if (_structured?.Violation is not null)
        {
            // The output broke its schema: what follows is dropped and the stream ends with an error.
            return;
        }

        switch (kind)
        {
            case SseItemKind.Comment:
                _coalescer.FlushAll(output, endOfStream: false);
                _sink.WriteComment(output, _parser.Comment);
                break;
            case SseItemKind.Retry:
                _coalescer.FlushAll(output, endOfStream: false);
                _sink.WriteRetry(output, _parser.Retry.GetValueOrDefault());
                break;
            case SseItemKind.Id:
                // Kept in its place: a reconnect must send the Last-Event-ID the upstream set.
                _coalescer.FlushAll(output, endOfStream: false);
                _sink.WriteId(output, _parser.LastEventId);
                break;
            default:
                HandleEvent(output, now);
                break;
        }
    }

    /// <summary>
    /// The end of the upstream's body. WHATWG: "Once the end of the file is reached, any pending data must be
    /// discarded. (If the file ends in the middle of an event, before the final empty line, the incomplete event is
    /// not dispatched.)" So is a last event here, with one exception: a chat stream's last <c>data: [DONE]</c> line
    /// without its blank line (captures of real upstreams end so, and the OpenAI SDK decoders dispatch it at end of
    /// stream) is the complete stream's end, and goes out whole.
    /// </summary>
    private void EndOfInput(IBufferWriter<byte> output)
    {
        if (_parser.AtLineBoundary)
        {
            // Terminate the block (after a CR the first LF is taken for CR LF) to see what it holds.
            _parser.Append("\n\n"u8);
            if (_parser.TryRead(out var kind) && kind == SseItemKind.Event && _rewrite
                && _parser.EventType.IsEmpty && !_parser.EventHadId && _parser.Data.SequenceEqual("[DONE]"u8))
            {
                Dispatch(output, kind, _timeProvider.GetTimestamp());
            }
        }

        _parser.DiscardPartialEvent();
    }

    private void HandleEvent(IBufferWriter<byte> output, long now)
    {
        var data = _parser.Data;
        if (!_parser.EventType.IsEmpty || _parser.EventHadId || !_rewrite)
        {
            _coalescer.FlushAll(output, endOfStream: false);
            WriteVerbatim(output, data);
            return;
        }

        if (data.SequenceEqual("[DONE]"u8))
        {
            Accounting.DoneSeen = true;
            _coalescer.FlushAll(output, endOfStream: true);
            _sink.WriteDone(output);
            Accounting.EventsWritten++;
            return;
        }

        if (!ChatChunkReader.TryRead(data, out var info))
        {
            _coalescer.FlushAll(output, endOfStream: false);
            WriteVerbatim(output, data);
            return;
        }

        Account(in info, data);
        if (_structured is not null && !_structured.OnChunk(data, in info))
        {
            // This chunk broke the schema: it is not delivered.
            return;
        }

        if (info.HasError)
        {
            // The upstream ends the stream with an error: as for Relay's own failures (Fail), the text before it
            // goes first and an incomplete character is dropped, so the error is the last thing the client sees.
            _coalescer.FlushAll(output, endOfStream: true);
            _sink.WriteUpstreamError(output, data);
            Accounting.EventsWritten++;
            return;
        }

        if (info.ChoiceCount == 0 && info.HasUsage && Settings.StripUsageChunk)
        {
            // Relay asked for usage for its own accounting; the client did not: consume the usage-only chunk.
            _coalescer.FlushAll(output, endOfStream: false);
            return;
        }

        var mergeKind = info.MergeableKind(out var field);
        if (mergeKind != DeltaKind.None && ChoiceCoalescer.Tracks(info.ChoiceIndex))
        {
            _coalescer.AddToken(output, now, data, in info, mergeKind, field);
            return;
        }

        // Not a plain text token: whatever is pending goes first, so every choice keeps its order.
        _coalescer.FlushAll(output, endOfStream: false);
        if (info.ChoiceCount == 1 && ChoiceCoalescer.Tracks(info.ChoiceIndex))
        {
            _coalescer.WriteChoiceChunk(output, now, data, in info);
            return;
        }

        _splicer.WriteChunk(output, data, -1, DeltaKind.None, default);
        Accounting.OnChunkWritten(info.CarriesContent ? 1 : 0);
    }

    private void WriteVerbatim(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        _sink.WriteEvent(output, _parser.EventType, data, _parser.LastEventId, _parser.EventHadId);
        Accounting.EventsWritten++;
    }

    private void Account(in ChatChunkInfo info, ReadOnlySpan<byte> data)
    {
        if (info.CarriesContent)
        {
            Accounting.UpstreamContentEvents++;
        }

        Accounting.UpstreamErrorSeen |= info.HasError;
        if (info.PromptTokens is { } prompt)
        {
            Accounting.PromptTokens = prompt;
        }

        if (info.CompletionTokens is { } completion)
        {
            Accounting.CompletionTokens = completion;
        }

        if (Accounting.Model is null && info.Model.IsNonEmpty)
        {
            Accounting.Model = Encoding.UTF8.GetString(info.Model.Inner(data));
        }
    }
}

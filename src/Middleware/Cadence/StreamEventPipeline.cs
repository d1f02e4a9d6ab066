using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The event pipeline of one stream: incremental SSE parsing, event transforms (coalescing, UTF-8 repair,
/// accounting) and canonical SSE writing. Single consumer: not thread-safe.
/// </summary>
/// <remarks>
/// <para>
/// Cadence (product spec, "Chunk size &amp; flush cadence": "We flush an SSE chunk every ~20 ms or every 8 tokens,
/// whichever comes first"): consecutive text tokens of one choice (<c>delta.content</c>,
/// <c>delta.reasoning_content</c>/<c>reasoning</c>, <c>delta.refusal</c>, or the <c>arguments</c> of a continuing
/// tool call), with their <c>logprobs</c> token lists concatenated when they carry them, are merged
/// into one event. The cadence is a throttle, not a delay: it limits how often a choice is flushed. A token that
/// arrives when the choice's last flush is about <see cref="StreamPipelineSettings.FlushInterval"/> old (three quarters of it: upstream pacing jitters) goes out
/// at once (a choice's first token always does); otherwise it waits until last flush + interval, or until
/// <see cref="StreamPipelineSettings.MaxTokensPerFlush"/> tokens have accumulated. An upstream slower than the
/// cadence is never delayed by it; a faster one is merged into at most one event per interval. Anything else (role, finish_reason, usage, logprobs, errors, non-JSON data,
/// <c>[DONE]</c>, comments, typed events) first flushes everything pending, then goes out in its place.
/// </para>
/// <para>
/// The merged event is the FIRST merged token's event with its text field replaced: its envelope (id, created,
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
/// the choice. If the choice finishes or the stream completes with a character still incomplete, the upstream
/// really sent a broken character, and the client gets U+FFFD for it. On <see cref="Fail"/> the incomplete bytes
/// are dropped: the error event says the text is cut; the same holds when the upstream ends with its own error event.
/// </para>
/// <para>
/// Grapheme clusters: when a flush is due, a trailing cluster that the next token will probably extend
/// (<see cref="GraphemeHold"/>: a ZWJ, half a flag, an emoji that a modifier or ZWJ may follow) is held until
/// that token comes, at most <see cref="LikelyHoldBound"/> after the latest token; while the upstream outpaces the
/// cadence, a trailing letter (which a combining mark may follow) is held at most one interval. Text that ends
/// otherwise is never held, so holding costs plain text nothing.
/// </para>
/// </remarks>
public sealed class StreamEventPipeline : IDisposable
{
    private const int MaxTrackedChoices = 128;

    // How long a cluster the text says goes on (a ZWJ, half a flag, an emoji) waits for its next token: longer than
    // the gap between tokens of any upstream worth streaming (20 ms at 50 tokens/s, 250 ms at 4).
    private static readonly TimeSpan LikelyHoldBound = TimeSpan.FromMilliseconds(500);

    private readonly TimeProvider _timeProvider;
    private readonly IncrementalSseParser _parser = new();
    private readonly PooledByteBuffer _scratch = new(1024);
    private readonly PooledByteBuffer _decoded = new(256);
    private readonly PooledByteBuffer? _raw;
    private readonly Utf8JsonWriter _json;
    private readonly long _interval;

    // A token counts as an interval after the last flush once at least three quarters of the interval have passed:
    // upstreams pace their tokens with jitter (the mock's 20 ms gaps at 50 tok/s measure 15 to 25 ms), and a throttle
    // with no slack would hold every early token of a stream that is already at the cadence ("every ~20 ms").
    private readonly long _dueAfter;
    private readonly long _likelyHold;
    private readonly bool _coalesce;
    private PendingChoiceDelta?[] _choices = new PendingChoiceDelta?[1];
    private long _rawBase;

    // Issue 13 hook (structured output): null unless the request asked for partial values or schema validation.
    private readonly StructuredOutput.StructuredStream? _structured;

    /// <summary>Creates a pipeline for one stream.</summary>
    public StreamEventPipeline(StreamPipelineSettings settings, TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(timeProvider);
        Settings = settings;
        _timeProvider = timeProvider;
        _interval = (long)(Math.Max(0, settings.FlushInterval.TotalSeconds) * timeProvider.TimestampFrequency);
        _dueAfter = _interval - (_interval / 4);
        _coalesce = settings.CoalescingEnabled && settings.MaxTokensPerFlush > 1 && _interval > 0;
        _likelyHold = Math.Max(_interval, (long)(LikelyHoldBound.TotalSeconds * timeProvider.TimestampFrequency));
        _raw = settings.Kind == StreamKind.PassThrough ? new PooledByteBuffer(4096) : null;
        _structured = _raw is null ? settings.StructuredOutput?.CreateStream() : null; // Issue 13 hook

        // Non-ASCII stays raw in the re-serialised text; SkipValidation lets one writer emit many lone values.
        _json = new Utf8JsonWriter(_scratch, new JsonWriterOptions
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            SkipValidation = true,
        });
    }

    /// <summary>The settings in force.</summary>
    public StreamPipelineSettings Settings { get; }

    /// <summary>What the stream has seen and delivered.</summary>
    public StreamAccounting Accounting { get; } = new();

    /// <summary>When pending content must be flushed (a <see cref="TimeProvider.GetTimestamp"/> value), or null.</summary>
    public long? FlushDeadline
    {
        get
        {
            long? earliest = null;
            foreach (var choice in _choices)
            {
                if (choice is { HasText: true } && (earliest is null || choice.Deadline < earliest))
                {
                    earliest = choice.Deadline;
                }
            }

            return earliest;
        }
    }

    /// <summary>
    /// Issue 13 hook: the first schema violation of the structured output; once set, nothing more is written and the
    /// stream must end (<see cref="Fail"/> with a <c>schema_violation</c> error).
    /// </summary>
    internal StructuredOutput.SchemaViolation? StructuredViolation => _structured?.Violation;

    /// <summary>Whether the input so far ends at an event boundary (no partial event held).</summary>
    public bool AtEventBoundary => _parser.AtEventBoundary;

    /// <summary>Consumes all of <paramref name="input"/>; writes what is due to <paramref name="output"/>.</summary>
    public void Process(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_raw is not null)
        {
            ProcessPassThrough(input, output);
            return;
        }

        var now = _timeProvider.GetTimestamp();
        FlushDue(output, now);
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
        FlushDue(output, _timeProvider.GetTimestamp());
    }

    /// <summary>
    /// Whether a clean end of the upstream's body now would be a complete stream. A stream Relay does not rewrite
    /// always is: it passes through as sent, end included (a WHATWG client drops an unterminated last event
    /// itself). A chat stream is complete when it saw <c>[DONE]</c> or an upstream error event, counting a last
    /// event whose lines are complete but whose blank line never came (see <see cref="Complete"/>).
    /// </summary>
    /// <remarks>
    /// Call only when the upstream ended cleanly: a final event without its blank line is dispatched here, so a
    /// stream ending in <c>data: [DONE]\n</c> is complete. Output may be written (that event).
    /// </remarks>
    public bool TryDispatchFinalEvent(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_raw is not null)
        {
            return true;
        }

        if (!_parser.AtLineBoundary)
        {
            // A line cut in the middle: its event is not known to be whole.
            return false;
        }

        DispatchRemaining(output);
        return Accounting.DoneSeen || Accounting.UpstreamErrorSeen;
    }

    /// <summary>
    /// The upstream ended cleanly: write everything still held. A last event whose dispatching blank line never
    /// came (captures end in <c>data: [DONE]\n</c>) is dispatched, as the OpenAI SDK decoders do at end of stream;
    /// WHATWG would drop it ("the incomplete event is not dispatched"), but the upstream ended cleanly, so it is
    /// complete content, not a truncation. Pass-through streams are copied as they came.
    /// </summary>
    public void Complete(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_raw is not null)
        {
            output.Write(_raw.WrittenSpan);
            _raw.Clear();
            return;
        }

        DispatchRemaining(output);
        FlushAll(output, endOfStream: true);
    }

    /// <summary>
    /// The stream must end with an error: write what is held, close any partial event, then a final
    /// <c>data: {"error":{...}}</c> event.
    /// </summary>
    public void Fail(IBufferWriter<byte> output, string message, string type, string? code, string? param = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_raw is not null)
        {
            // Only whole events were forwarded: drop the partial one so the client never dispatches half of it.
            _raw.Clear();
        }
        else
        {
            FlushAll(output, endOfStream: false);
            DropIncompleteCharacters();
        }

        _parser.DiscardPartialEvent();
        SseWriter.WriteErrorEvent(output, message, type, code, param);
        Accounting.EventsWritten++;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _parser.Dispose();
        _scratch.Dispose();
        _decoded.Dispose();
        _raw?.Dispose();
        _json.Dispose();
        _structured?.Dispose();
        foreach (var choice in _choices)
        {
            choice?.Dispose();
        }

        _choices = [];
    }

    private void DropIncompleteCharacters()
    {
        foreach (var choice in _choices)
        {
            choice?.Carry.Clear();
        }
    }

    private void ProcessPassThrough(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        var raw = _raw!;
        var boundary = _rawBase;
        foreach (var segment in input)
        {
            raw.Append(segment.Span);
            _parser.Append(segment.Span);
            while (_parser.TryRead(out var kind))
            {
                if (kind == SseItemKind.Event)
                {
                    Accounting.EventsWritten++;
                }

                if (!_parser.InsideBlock)
                {
                    boundary = _parser.Consumed;
                }
            }

            if (!_parser.InsideBlock)
            {
                boundary = _parser.Consumed;
            }
        }

        // Forward up to the last event boundary, untouched; a partial event waits for its end (clients do not
        // dispatch it before then anyway) so that Fail can drop it.
        var ready = (int)(boundary - _rawBase);
        if (ready > 0)
        {
            output.Write(raw.WrittenSpan[..ready]);
            raw.RemovePrefix(ready);
            _rawBase = boundary;
        }
    }

    private void Dispatch(IBufferWriter<byte> output, SseItemKind kind, long now)
    {
        if (_structured?.Violation is not null)
        {
            // Issue 13 hook: the output broke its schema; what follows is dropped and the stream ends with an error.
            return;
        }

        switch (kind)
        {
            case SseItemKind.Comment:
                FlushAll(output, endOfStream: false);
                SseWriter.WriteComment(output, _parser.Comment);
                break;
            case SseItemKind.Retry:
                FlushAll(output, endOfStream: false);
                SseWriter.WriteRetry(output, _parser.Retry.GetValueOrDefault());
                break;
            case SseItemKind.Id:
                // Kept in its place: a reconnect must send the Last-Event-ID the upstream set.
                FlushAll(output, endOfStream: false);
                SseWriter.WriteId(output, _parser.LastEventId);
                break;
            default:
                HandleEvent(output, now);
                break;
        }
    }

    /// <summary>Terminates the last line and block and dispatches them; blank lines after a boundary dispatch nothing.</summary>
    private void DispatchRemaining(IBufferWriter<byte> output)
    {
        _parser.Append("\n\n"u8);
        var now = _timeProvider.GetTimestamp();
        while (_parser.TryRead(out var kind))
        {
            Dispatch(output, kind, now);
        }
    }

    private void HandleEvent(IBufferWriter<byte> output, long now)
    {
        var data = _parser.Data;
        if (!_parser.EventType.IsEmpty || _parser.EventHadId)
        {
            FlushAll(output, endOfStream: false);
            WriteVerbatim(output, data);
            return;
        }

        if (data.SequenceEqual("[DONE]"u8))
        {
            Accounting.DoneSeen = true;
            FlushAll(output, endOfStream: true);
            WriteVerbatim(output, data);
            return;
        }

        if (!ChatChunkReader.TryRead(data, out var info))
        {
            FlushAll(output, endOfStream: false);
            WriteVerbatim(output, data);
            return;
        }

        Account(in info, data);
        if (_structured is not null && !_structured.OnChunk(data, in info))
        {
            // Issue 13 hook: this chunk broke the schema; it is not delivered.
            return;
        }

        if (info.HasError)
        {
            // The upstream ends the stream with an error: as for Relay's own failures (Fail), the text before it
            // goes first and an incomplete character is dropped, so the error is the last thing the client sees.
            FlushAll(output, endOfStream: false);
            DropIncompleteCharacters();
            WriteVerbatim(output, data);
            return;
        }

        if (info.ChoiceCount == 0 && info.HasUsage && Settings.StripUsageChunk)
        {
            // Relay asked for usage for its own accounting; the client did not: consume the usage-only chunk.
            FlushAll(output, endOfStream: false);
            return;
        }

        var mergeKind = info.MergeableKind(out var field);
        if (mergeKind != DeltaKind.None && (uint)info.ChoiceIndex < MaxTrackedChoices)
        {
            AddToken(output, now, data, in info, mergeKind, field);
            return;
        }

        // Not a plain text token: whatever is pending goes first, so every choice keeps its order.
        FlushAll(output, endOfStream: false);
        if (info.ChoiceCount == 1 && (uint)info.ChoiceIndex < MaxTrackedChoices)
        {
            var choice = GetChoice(info.ChoiceIndex);
            choice.SeenContent |= info.CarriesContent;
            var text = info.Content.IsPresent ? info.Content : info.Reasoning.IsPresent ? info.Reasoning : info.Refusal;
            var parsed = _structured is not null && info.Content.IsNonEmpty ? _structured.Parsed(info.ChoiceIndex, DeltaKind.Content, 0) : default; // Issue 13 hook
            if (text.IsPresent)
            {
                _decoded.Clear();
                var clean = LenientJsonStringDecoder.Decode(text.Inner(data), ref choice.Carry, _decoded);
                if (info.HasFinishReason)
                {
                    LenientJsonStringDecoder.FlushCarryAsReplacement(ref choice.Carry, _decoded);
                }

                if (!clean || !parsed.IsEmpty)
                {
                    WriteReplaced(output, data, text, _decoded.WrittenSpan, parsed);
                    CountWritten(info.CarriesContent ? 1 : 0);
                    return;
                }
            }
            else if (info.HasFinishReason && !choice.Carry.IsEmpty && choice.Envelope.Length > 0)
            {
                LenientJsonStringDecoder.FlushCarryAsReplacement(ref choice.Carry, choice.Text);
                FlushChoice(output, choice, now, allowHold: false);
            }
        }

        WriteVerbatim(output, data);
        if (info.CarriesContent)
        {
            Accounting.DeliveredContentEvents++;
        }
    }

    private void AddToken(IBufferWriter<byte> output, long now, ReadOnlySpan<byte> data, in ChatChunkInfo info, DeltaKind kind, JsonStringRange field)
    {
        var choice = GetChoice(info.ChoiceIndex);
        var running = choice.Tokens > 0 || choice.HasText;
        var hasLogprobs = info.LogprobsKind != DeltaKind.None;
        if (running && (choice.Kind != kind || choice.HasLogprobs != hasLogprobs
            || (kind == DeltaKind.ToolArguments && choice.ToolIndex != info.ToolIndex)))
        {
            // Another field starts: what is pending is complete, including a character it will never finish.
            LenientJsonStringDecoder.FlushCarryAsReplacement(ref choice.Carry, choice.Text);
            FlushChoice(output, choice, now, allowHold: false);
            running = choice.Tokens > 0 || choice.HasText;
        }

        // The throttle: a token goes out at once when the choice's last flush is about an interval old (at least
        // three quarters of it; the first token always); otherwise it waits for last flush + interval, or for
        // MaxTokensPerFlush tokens.
        var due = !_coalesce || !choice.SeenContent || now - choice.LastFlush >= _dueAfter;
        choice.Fast = false;
        choice.LastTokenAt = now;
        choice.SeenContent = true;
        var tokenStart = 0;
        if (!running && due && choice.Carry.IsEmpty)
        {
            // Fast path: nothing pending and the token goes out at once; if its text needs no repair and no
            // grapheme hold, forward the event as it came (no copy, no re-serialisation).
            _decoded.Clear();
            var clean = LenientJsonStringDecoder.Decode(field.Inner(data), ref choice.Carry, _decoded);
            if (clean && (_structured is null || !_structured.WantsParsed(kind)) && (!_coalesce || hasLogprobs || GraphemeHold.HoldBackStart(_decoded.WrittenSpan, choice.Fast, out _) == _decoded.Length))
            {
                WriteVerbatim(output, data);
                Accounting.DeliveredContentEvents++;
                choice.LastFlush = now;
                return;
            }

            StartRun(choice, data, field, kind, in info);
            choice.Text.Append(_decoded.WrittenSpan);
        }
        else
        {
            if (!running)
            {
                StartRun(choice, data, field, kind, in info);
            }

            tokenStart = choice.Text.Length;
            LenientJsonStringDecoder.Decode(field.Inner(data), ref choice.Carry, choice.Text);
        }

        if (hasLogprobs)
        {
            AppendListItems(choice.Logprobs, info.Logprobs.Inner(data));
        }

        choice.Tokens++;

        // MaxTokensPerFlush tokens before the slot: the upstream outpaces the cadence, and the next token is due
        // long before the next flush, so a final letter may wait for a combining mark.
        choice.Fast = choice.Tokens >= Settings.MaxTokensPerFlush;
        if (due || choice.Fast)
        {
            var tokenLength = choice.Text.Length - tokenStart;
            FlushChoice(output, choice, now, allowHold: _coalesce);
            if (choice.HasText && choice.Tokens == 0 && choice.Text.Length <= tokenLength)
            {
                // What is held back came with this token: its event is the envelope of the next write, so the
                // held text's latency is measured from when it arrived (a held run never carries logprobs).
                choice.Envelope.Clear();
                choice.Envelope.Append(data);
                choice.Field = field;
            }
        }
        else
        {
            choice.Deadline = choice.LastFlush + _interval;
        }
    }

    private static void StartRun(PendingChoiceDelta choice, ReadOnlySpan<byte> data, JsonStringRange field, DeltaKind kind, in ChatChunkInfo info)
    {
        choice.Envelope.Clear();
        choice.Envelope.Append(data);
        choice.Field = field;
        choice.Kind = kind;
        choice.ToolIndex = info.ToolIndex;
        choice.HasLogprobs = info.LogprobsKind != DeltaKind.None;
        choice.LogprobsField = info.Logprobs;
        if (choice.HasLogprobs)
        {
            choice.Logprobs.Clear();
        }
    }

    /// <summary>Appends the elements of a JSON array (its text between the brackets) to a comma-separated list.</summary>
    private static void AppendListItems(PooledByteBuffer list, ReadOnlySpan<byte> items)
    {
        items = items.Trim(" \t\r\n"u8);
        if (items.IsEmpty)
        {
            return;
        }

        if (list.Length > 0)
        {
            list.Append((byte)',');
        }

        list.Append(items);
    }

    private void FlushChoice(IBufferWriter<byte> output, PendingChoiceDelta choice, long now, bool allowHold)
    {
        if (!choice.HasText)
        {
            return;
        }

        var text = choice.Text.WrittenSpan;
        var split = text.Length;
        var holdUntil = 0L;

        // Token logprobs cannot be split with the text: a run that carries them is never held back.
        if (allowHold && !choice.HasLogprobs)
        {
            var start = GraphemeHold.HoldBackStart(text, choice.Fast, out var hold);
            if (hold != GraphemeHoldKind.None)
            {
                // Every hold is bounded from the latest token: a cluster still growing token by token (a family
                // emoji over seven tokens) stays held; an upstream that goes quiet releases it.
                var until = choice.LastTokenAt + (hold == GraphemeHoldKind.Likely ? _likelyHold : _interval);
                if (now < until)
                {
                    split = start;
                    holdUntil = until;
                }
            }
        }

        if (split > 0)
        {
            var envelope = choice.Envelope.WrittenSpan;

            // Issue 13 hook: the partial value of the choice's JSON text, one per flush.
            var parsed = _structured is null ? default : _structured.Parsed(Array.IndexOf(_choices, choice), choice.Kind, choice.ToolIndex);
            if (choice.HasLogprobs)
            {
                WriteReplaced(output, envelope, choice.Field, text[..split], choice.LogprobsField, choice.Logprobs.WrittenSpan, parsed);
                choice.Logprobs.Clear();
            }
            else
            {
                WriteReplaced(output, envelope, choice.Field, text[..split], parsed);
            }

            CountWritten(choice.Tokens);
            choice.Tokens = 0;
            choice.LastFlush = now;
        }

        if (split == text.Length)
        {
            choice.Text.Clear();
            return;
        }

        choice.Text.RemovePrefix(split);
        choice.Deadline = holdUntil;
    }

    private void FlushDue(IBufferWriter<byte> output, long now)
    {
        foreach (var choice in _choices)
        {
            if (choice is { HasText: true } && choice.Deadline <= now)
            {
                var slot = choice.Deadline;
                var previous = choice.LastFlush;
                FlushChoice(output, choice, now, allowHold: _coalesce);
                if (choice.LastFlush != previous)
                {
                    // The flush belongs to its slot: a wake-up that came late does not push the next slot back.
                    choice.LastFlush = Math.Max(slot, previous);
                }
            }
        }
    }

    private void FlushAll(IBufferWriter<byte> output, bool endOfStream)
    {
        foreach (var choice in _choices)
        {
            if (choice is null)
            {
                continue;
            }

            if (endOfStream && !choice.Carry.IsEmpty && choice.Envelope.Length > 0)
            {
                LenientJsonStringDecoder.FlushCarryAsReplacement(ref choice.Carry, choice.Text);
            }

            if (choice.HasText)
            {
                FlushChoice(output, choice, _timeProvider.GetTimestamp(), allowHold: false);
            }
        }
    }

    private void WriteReplaced(IBufferWriter<byte> output, ReadOnlySpan<byte> json, JsonStringRange field, ReadOnlySpan<byte> text, ReadOnlySpan<byte> parsed = default)
    {
        _scratch.Clear();
        _scratch.Append(json[..field.Start]);
        AppendString(text);
        _scratch.Append(parsed);
        _scratch.Append(json[field.End..]);
        SseWriter.WriteData(output, _scratch.WrittenSpan);
    }

    /// <summary>As above, with the <c>logprobs</c> token list at <paramref name="list"/> replaced by <paramref name="items"/>.</summary>
    private void WriteReplaced(IBufferWriter<byte> output, ReadOnlySpan<byte> json, JsonStringRange field, ReadOnlySpan<byte> text, JsonStringRange list, ReadOnlySpan<byte> items, ReadOnlySpan<byte> parsed)
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

        SseWriter.WriteData(output, _scratch.WrittenSpan);
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

    private void WriteVerbatim(IBufferWriter<byte> output, ReadOnlySpan<byte> data)
    {
        SseWriter.WriteEvent(output, _parser.EventType, data, _parser.LastEventId, _parser.EventHadId);
        Accounting.EventsWritten++;
    }

    private void CountWritten(int contentEvents)
    {
        Accounting.EventsWritten++;
        Accounting.DeliveredContentEvents += contentEvents;
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

    private PendingChoiceDelta GetChoice(int index)
    {
        if (index >= _choices.Length)
        {
            Array.Resize(ref _choices, Math.Max(index + 1, _choices.Length * 2));
        }

        return _choices[index] ??= new PendingChoiceDelta();
    }
}

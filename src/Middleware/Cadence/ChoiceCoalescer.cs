using System.Buffers;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The cadence of one stream, choice by choice: merges consecutive text tokens of a choice into one event, repairs
/// characters split between tokens, and holds back a grapheme cluster the next token will probably extend (the rules,
/// and the product spec they implement, are on <see cref="StreamEventPipeline"/>). Writes through the stream's
/// <see cref="ChunkSplicer"/>.
/// </summary>
internal sealed class ChoiceCoalescer : IDisposable
{
    /// <summary>Choices beyond this index are not tracked: their chunks pass as they came.</summary>
    private const int MaxTrackedChoices = 128;

    // How long a cluster the text says goes on (a ZWJ, half a flag, an emoji) waits for its next token: longer than
    // the gap between tokens of any upstream worth streaming (20 ms at 50 tokens/s, 250 ms at 4).
    private static readonly TimeSpan LikelyHoldBound = TimeSpan.FromMilliseconds(500);

    private readonly StreamPipelineSettings _settings;
    private readonly TimeProvider _timeProvider;
    private readonly ChunkSplicer _splicer;
    private readonly StreamAccounting _accounting;
    private readonly PooledByteBuffer _decoded = new(256);
    private readonly long _interval;

    // A token counts as an interval after the last flush once at least three quarters of the interval have passed:
    // upstreams pace their tokens with jitter (the mock's 20 ms gaps at 50 tok/s measure 15 to 25 ms), and a throttle
    // with no slack would hold every early token of a stream that is already at the cadence ("every ~20 ms").
    private readonly long _dueAfter;

    // A lone token whose slot comes waits a quarter of an interval more for the next one. At about one token per half
    // interval (100 tok/s at 20 ms) every other token arrives on the older one's slot: when the timer fired a moment
    // first, the older token went alone, the interval restarted, and the token that just missed it waited almost a
    // whole interval (a median of 19 ms at 100 tok/s in the load benchmark). With the grace the two go together.
    private readonly long _grace;
    private readonly long _likelyHold;
    private readonly bool _coalesce;
    private PendingChoiceDelta?[] _choices = new PendingChoiceDelta?[1];

    // Structured output (partial values, schema validation), or null: each flush of a JSON choice carries its parsed value.
    private readonly StructuredOutput.StructuredStream? _structured;

    public ChoiceCoalescer(StreamPipelineSettings settings, TimeProvider timeProvider, ChunkSplicer splicer, StreamAccounting accounting,
        StructuredOutput.StructuredStream? structured = null)
    {
        _structured = structured;
        _settings = settings;
        _timeProvider = timeProvider;
        _splicer = splicer;
        _accounting = accounting;
        _interval = (long)(Math.Max(0, settings.FlushInterval.TotalSeconds) * timeProvider.TimestampFrequency);
        _dueAfter = _interval - (_interval / 4);
        _grace = _interval / 4;
        _coalesce = settings.CoalescingEnabled && settings.MaxTokensPerFlush > 1 && _interval > 0;
        _likelyHold = Math.Max(_interval, (long)(LikelyHoldBound.TotalSeconds * timeProvider.TimestampFrequency));
    }

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

    /// <summary>Whether the choice at <paramref name="index"/> is tracked (its text merged and repaired).</summary>
    public static bool Tracks(int index) => (uint)index < MaxTrackedChoices;

    /// <summary>
    /// A chunk of one tracked choice that is not a plain text token (a role, a finish reason, a token with other
    /// fields): written in its place, its text repaired, a character left incomplete at a finish dropped. Call after
    /// <see cref="FlushAll"/>, so that every choice keeps its order.
    /// </summary>
    public void WriteChoiceChunk(IBufferWriter<byte> output, long now, ReadOnlySpan<byte> data, in ChatChunkInfo info)
    {
        var choice = GetChoice(info.ChoiceIndex);
        choice.SeenContent |= info.CarriesContent;
        var text = info.Content.IsPresent ? info.Content : info.Reasoning.IsPresent ? info.Reasoning : info.Refusal;
        var contentEvents = info.CarriesContent ? 1 : 0;
        if (text.IsPresent)
        {
            _decoded.Clear();
            var clean = LenientJsonStringDecoder.Decode(text.Inner(data), ref choice.Carry, _decoded);
            if (info.HasFinishReason)
            {
                // The choice is finished: a character still incomplete will never be completed, and is dropped.
                choice.Carry.Clear();
            }

            var kind = info.Content.IsPresent ? DeltaKind.Content : info.Reasoning.IsPresent ? DeltaKind.Reasoning : DeltaKind.Refusal;
            var parsed = _structured is not null && info.Content.IsNonEmpty ? _structured.Parsed(info.ChoiceIndex, DeltaKind.Content, 0) : default;
            if (clean && parsed.IsEmpty)
            {
                _splicer.WriteChunk(output, data, info.ChoiceIndex, kind, _decoded.WrittenSpan);
            }
            else
            {
                _splicer.WriteReplaced(output, data, text, _decoded.WrittenSpan, info.ChoiceIndex, kind, parsed);
            }

            _accounting.OnChunkWritten(contentEvents);
            return;
        }

        if (info.HasFinishReason)
        {
            // A length cut inside a character (the upstream's last token ended in its first bytes): what the client
            // gets ends at the last whole character, as before an error event, not with a U+FFFD the upstream never sent.
            choice.Carry.Clear();
        }

        _splicer.WriteChunk(output, data, -1, DeltaKind.None, default);
        _accounting.OnChunkWritten(contentEvents);
    }

    /// <summary>
    /// A plain text token of a tracked choice: written at once when the choice's last flush is about an interval old,
    /// otherwise merged into the choice's pending run.
    /// </summary>
    public void AddToken(IBufferWriter<byte> output, long now, ReadOnlySpan<byte> data, in ChatChunkInfo info, DeltaKind kind, JsonStringRange field)
    {
        var choice = GetChoice(info.ChoiceIndex);
        var running = choice.Tokens > 0 || choice.HasText;
        var hasLogprobs = info.LogprobsKind != DeltaKind.None;
        if ((running || !choice.Carry.IsEmpty) && (choice.Kind != kind || choice.HasLogprobs != hasLogprobs
            || (kind == DeltaKind.ToolArguments && choice.ToolIndex != info.ToolIndex)))
        {
            // Another field starts: what is pending is complete; a character it will never finish is dropped.
            choice.Carry.Clear();
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
            choice.Decomposed = choice.Decomposed || (_coalesce && GraphemeHold.HasCombiningDiacritic(_decoded.WrittenSpan));
            if (clean && (_structured is null || !_structured.WantsParsed(kind))
                && (!_coalesce || hasLogprobs || GraphemeHold.HoldBackStart(_decoded.WrittenSpan, choice.Fast, choice.Decomposed, out _) == _decoded.Length))
            {
                _splicer.WriteChunk(output, data, info.ChoiceIndex, kind, _decoded.WrittenSpan);
                _accounting.OnChunkWritten(1);
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
            choice.Decomposed = choice.Decomposed || GraphemeHold.HasCombiningDiacritic(choice.Text.WrittenSpan[tokenStart..]);
        }

        if (hasLogprobs)
        {
            AppendListItems(choice.Logprobs, info.Logprobs.Inner(data));
        }

        choice.Tokens++;

        // MaxTokensPerFlush tokens before the slot: the upstream outpaces the cadence, and the next token is due
        // long before the next flush, so a final letter may wait for a combining mark.
        choice.Fast = choice.Tokens >= _settings.MaxTokensPerFlush;
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
            var start = GraphemeHold.HoldBackStart(text, choice.Fast, choice.Decomposed, out var hold);
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

            // Structured output: the partial value of the choice's JSON text, one per flush.
            var parsed = _structured is null ? default : _structured.Parsed(choice.Index, choice.Kind, choice.ToolIndex);
            if (choice.HasLogprobs)
            {
                _splicer.WriteReplaced(output, envelope, choice.Field, text[..split], choice.LogprobsField, choice.Logprobs.WrittenSpan, choice.Index, choice.Kind, parsed);
                choice.Logprobs.Clear();
            }
            else
            {
                _splicer.WriteReplaced(output, envelope, choice.Field, text[..split], choice.Index, choice.Kind, parsed);
            }

            _accounting.OnChunkWritten(choice.Tokens);
            choice.Tokens = 0;
            choice.Graced = false;
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

    private PendingChoiceDelta GetChoice(int index)
    {
        if (index >= _choices.Length)
        {
            Array.Resize(ref _choices, Math.Max(index + 1, _choices.Length * 2));
        }

        return _choices[index] ??= new PendingChoiceDelta { Index = index };
    }

    /// <summary>Writes the text of every choice whose deadline has come.</summary>
    public void FlushDue(IBufferWriter<byte> output, long now)
    {
        foreach (var choice in _choices)
        {
            if (choice is { HasText: true } && choice.Deadline <= now)
            {
                if (_coalesce && choice is { Tokens: 1, Graced: false } && choice.Deadline == choice.LastFlush + _interval && now < choice.Deadline + _grace)
                {
                    choice.Graced = true;
                    choice.Deadline += _grace;
                    continue;
                }

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

    /// <summary>
    /// Writes everything pending, nothing held. At the end of the stream (<paramref name="endOfStream"/>: its
    /// <c>[DONE]</c>, its clean end, or an error that ends it) a character still incomplete will never be completed,
    /// and is dropped: the client sees the text up to the last whole character, never a U+FFFD the upstream did not send.
    /// </summary>
    public void FlushAll(IBufferWriter<byte> output, bool endOfStream)
    {
        foreach (var choice in _choices)
        {
            if (choice is null)
            {
                continue;
            }

            if (choice.HasText)
            {
                FlushChoice(output, choice, _timeProvider.GetTimestamp(), allowHold: false);
            }

            if (endOfStream)
            {
                choice.Carry.Clear();
            }
        }
    }

    public void Dispose()
    {
        _decoded.Dispose();
        foreach (var choice in _choices)
        {
            choice?.Dispose();
        }

        _choices = [];
    }
}

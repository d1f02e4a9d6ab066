using System.Buffers;

namespace Relay.Middleware.ServerSentEvents;

/// <summary>
/// A push-based, incremental WHATWG <c>text/event-stream</c> parser over UTF-8 bytes split anywhere across reads.
/// </summary>
/// <remarks>
/// Why not <c>System.Net.ServerSentEvents.SseParser</c>: it pulls from a <see cref="Stream"/> itself, so the relay's
/// single loop could not interleave cadence deadlines with reads without cancelling the enumeration; it drops
/// comments, which a relay must forward (keep-alives); and it allocates an <c>SseItem</c> (and a string or a
/// parsed value) per event. This parser is pushed bytes, surfaces comments, and exposes each event as spans valid
/// until the next call, so steady-state parsing allocates nothing (bench/README.md has the per-event figures).
/// It keeps the framework parser's good habits: one pooled buffer that shifts unread bytes down instead of
/// growing, and a remembered search position so a long line is never rescanned (no O(n^2)).
/// Unlike the framework parser it does not hold a trailing CR until the next byte: a CR ends the line at once
/// ("a single U+000D CARRIAGE RETURN (CR) character" is a line ending) and a flag swallows an LF that
/// follows at the start of the next read, so an event ended by CR CR is dispatched without waiting for more input.
/// </remarks>
internal sealed class IncrementalSseParser : IDisposable
{
    private const byte LF = (byte)'\n';
    private const byte CR = (byte)'\r';

    private readonly int _initialBufferSize;
    private byte[] _buffer = [];
    private int _start;
    private int _end;
    private int _searched;
    private bool _skipLeadingLf;
    private bool _bomChecked;
    private bool _resetBeforeNextLine;
    private long _consumedBase;

    private readonly PooledByteBuffer _data = new(1024);
    private readonly PooledByteBuffer _eventType = new(32);
    private readonly PooledByteBuffer _lastEventId = new(32);
    private int _dataLines;
    private bool _blockHasFields;
    private int _commentStart;
    private int _commentLength;

    /// <remarks>
    /// The line buffer is rented on the first bytes and returned whenever every byte is consumed, so a silent stream
    /// holds none (see <see cref="PooledByteBuffer"/> for why that matters with many concurrent streams).
    /// </remarks>
    public IncrementalSseParser(int initialBufferSize = 4096) => _initialBufferSize = initialBufferSize;

    /// <summary>The size of the pooled arrays held now: none once every byte appended is consumed and no event is open.</summary>
    internal int PooledBytes => _buffer.Length + _data.PooledBytes + _eventType.PooledBytes + _lastEventId.PooledBytes;

    /// <summary>The event's data: data lines joined with LF. Valid until the next call.</summary>
    public ReadOnlySpan<byte> Data => _data.WrittenSpan;

    /// <summary>The event type, empty when none was set (WHATWG then uses "message").</summary>
    public ReadOnlySpan<byte> EventType => _eventType.WrittenSpan;

    /// <summary>The last event ID, which persists across events (WHATWG "last event ID buffer").</summary>
    public ReadOnlySpan<byte> LastEventId => _lastEventId.WrittenSpan;

    /// <summary>Whether the dispatched event's (or <see cref="SseItemKind.Id"/> item's) block had an <c>id</c> field (so a relay writes it back).</summary>
    public bool EventHadId { get; private set; }

    /// <summary>The comment's text after the colon, as it came (leading space kept).</summary>
    public ReadOnlySpan<byte> Comment => _buffer.AsSpan(_commentStart, _commentLength);

    /// <summary>The reconnection time set by the last valid <c>retry</c> field, in milliseconds.</summary>
    public long? Retry { get; private set; }

    /// <summary>Whether everything appended so far ends at an event boundary: no partial line or event held.</summary>
    public bool AtEventBoundary => _start == _end && (!_blockHasFields || _resetBeforeNextLine);

    /// <summary>Whether everything appended so far ends at a line boundary: no partial line held.</summary>
    public bool AtLineBoundary => _start == _end;

    /// <summary>Bytes of the stream consumed as complete lines so far (a trailing partial line is not counted).</summary>
    public long Consumed => _consumedBase + _start;

    /// <summary>Whether field lines of an event not yet dispatched have been consumed.</summary>
    public bool InsideBlock => _blockHasFields && !_resetBeforeNextLine;

    /// <summary>Appends bytes from upstream. Spans from earlier items become invalid.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (_start == _end)
        {
            _consumedBase += _start;
            _start = _end = _searched = 0;
        }
        else if (_buffer.Length - _end < bytes.Length && _start > 0)
        {
            // Shift the unread tail down instead of growing: the buffer stays the size of the longest line.
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _consumedBase += _start;
            _end -= _start;
            _searched -= _start;
            _start = 0;
        }

        if (_buffer.Length - _end < bytes.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(Math.Max(_buffer.Length * 2, _end + bytes.Length), _initialBufferSize));
            Buffer.BlockCopy(_buffer, 0, bigger, 0, _end);
            ReleaseBuffer();
            _buffer = bigger;
        }

        bytes.CopyTo(_buffer.AsSpan(_end));
        _end += bytes.Length;
    }

    /// <summary>Reads the next complete item from what was appended; false when more input is needed.</summary>
    public bool TryRead(out SseItemKind kind)
    {
        kind = default;
        if (_resetBeforeNextLine)
        {
            ResetBlock();
        }

        while (true)
        {
            if (!_bomChecked && !TrySkipBom())
            {
                return false;
            }

            if (_skipLeadingLf)
            {
                if (_start == _end)
                {
                    return NeedMoreInput();
                }

                // The previous read ended in CR: an LF right after it belongs to the same CRLF line ending.
                _skipLeadingLf = false;
                if (_buffer[_start] == LF)
                {
                    _start++;
                }

                _searched = Math.Max(_searched, _start);
            }

            var index = _buffer.AsSpan(_searched, _end - _searched).IndexOfAny(CR, LF);
            if (index < 0)
            {
                _searched = _end;
                return NeedMoreInput();
            }

            var lineEnd = _searched + index;
            var next = lineEnd + 1;
            if (_buffer[lineEnd] == CR)
            {
                if (next < _end)
                {
                    if (_buffer[next] == LF)
                    {
                        next++;
                    }
                }
                else
                {
                    _skipLeadingLf = true;
                }
            }

            var lineStart = _start;
            _start = next;
            _searched = next;
            if (ProcessLine(lineStart, lineEnd - lineStart, out kind))
            {
                return true;
            }
        }
    }

    /// <summary>Forgets any partial line or event (the stream is ending with an error).</summary>
    public void DiscardPartialEvent()
    {
        _consumedBase += _end;
        _start = _end = _searched = 0;
        _skipLeadingLf = false;
        ResetBlock();
    }

    private bool TrySkipBom()
    {
        // WHATWG: "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
        // Only at the very start of the stream, and its bytes may arrive split across reads.
        ReadOnlySpan<byte> bom = [0xEF, 0xBB, 0xBF];
        var available = Math.Min(_end - _start, 3);
        if (!_buffer.AsSpan(_start, available).SequenceEqual(bom[..available]))
        {
            _bomChecked = true;
            return true;
        }

        if (available < 3)
        {
            return false;
        }

        _start += 3;
        _searched = Math.Max(_searched, _start);
        _bomChecked = true;
        return true;
    }

    private bool ProcessLine(int start, int length, out SseItemKind kind)
    {
        kind = SseItemKind.Event;
        var line = _buffer.AsSpan(start, length);
        if (line.IsEmpty)
        {
            // WHATWG: "If the line is empty (a blank line): Dispatch the event." ... "If the data buffer is an
            // empty string, set the data buffer and the event type buffer to the empty string and return."
            if (_dataLines == 0)
            {
                // ... but the dispatch steps begin with "Set the last event ID string of the event source to the
                // value of the last event ID buffer": an id-only block changes what a reconnect sends.
                if (EventHadId)
                {
                    kind = SseItemKind.Id;
                    _resetBeforeNextLine = true;
                    return true;
                }

                ResetBlock();
                return false;
            }

            _resetBeforeNextLine = true;
            return true;
        }

        if (line[0] == (byte)':')
        {
            // WHATWG: "If the line starts with a U+003A COLON character (:): Ignore the line." A relay keeps it.
            kind = SseItemKind.Comment;
            _commentStart = start + 1;
            _commentLength = length - 1;
            return true;
        }

        // WHATWG: "If the line contains a U+003A COLON character: collect the characters on the line before the
        // first colon and let field be that string; ... If value starts with a U+0020 SPACE character, remove it."
        // "Otherwise, the string is not empty but does not contain a colon: process the field using the whole
        // line as the field name, and the empty string as the field value."
        ReadOnlySpan<byte> field;
        ReadOnlySpan<byte> value;
        var colon = line.IndexOf((byte)':');
        if (colon >= 0)
        {
            field = line[..colon];
            value = line[(colon + 1)..];
            if (!value.IsEmpty && value[0] == (byte)' ')
            {
                value = value[1..];
            }
        }
        else
        {
            field = line;
            value = default;
        }

        _blockHasFields = true;
        if (field.SequenceEqual("data"u8))
        {
            // WHATWG: "Append the field value to the data buffer, then append a single U+000A LINE FEED (LF)";
            // the final LF is removed at dispatch, so join with LF instead.
            if (_dataLines > 0)
            {
                _data.Append(LF);
            }

            _data.Append(value);
            _dataLines++;
        }
        else if (field.SequenceEqual("event"u8))
        {
            _eventType.Clear();
            _eventType.Append(value);
        }
        else if (field.SequenceEqual("id"u8))
        {
            // WHATWG: "If the field value does not contain U+0000 NULL, then set the last event ID buffer".
            if (value.IndexOf((byte)0) < 0)
            {
                _lastEventId.Clear();
                _lastEventId.Append(value);
                EventHadId = true;
            }
        }
        else if (field.SequenceEqual("retry"u8))
        {
            // WHATWG: "If the field value consists of only ASCII digits, then interpret the field value as an
            // integer in base ten, and set the event stream's reconnection time to that integer." 64-bit.
            if (TryParseDigits(value, out var retry))
            {
                Retry = retry;
                kind = SseItemKind.Retry;
                return true;
            }
        }

        // WHATWG: "Otherwise: The field is ignored."
        return false;
    }

    private static bool TryParseDigits(ReadOnlySpan<byte> value, out long result)
    {
        result = 0;
        if (value.IsEmpty)
        {
            return false;
        }

        foreach (var b in value)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }

            if (result > (long.MaxValue - 9) / 10)
            {
                return false;
            }

            result = (result * 10) + (b - '0');
        }

        return true;
    }

    private void ResetBlock()
    {
        _resetBeforeNextLine = false;
        _data.Clear();
        _dataLines = 0;
        _eventType.Clear();
        _blockHasFields = false;
        EventHadId = false;
    }

    /// <summary>Nothing more to read until more bytes are appended: a buffer with every byte consumed goes back to the pool.</summary>
    private bool NeedMoreInput()
    {
        if (_start == _end)
        {
            ReleaseBuffer();
        }

        return false;
    }

    private void ReleaseBuffer()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    public void Dispose()
    {
        ReleaseBuffer();
        _data.Dispose();
        _eventType.Dispose();
        _lastEventId.Dispose();
    }
}

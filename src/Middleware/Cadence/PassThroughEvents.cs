using System.Buffers;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The path of a stream Relay does not rewrite (<see cref="StreamKind.PassThrough"/>) to a sink that takes bytes:
/// no JSON work at all. The bytes go out as they came, up to the last event boundary; the parser only finds the
/// boundaries (and counts events), so that a partial event can be dropped when the stream fails.
/// </summary>
internal sealed class PassThroughEvents : IDisposable
{
    private readonly IncrementalSseParser _parser;
    private readonly StreamAccounting _accounting;
    private readonly PooledByteBuffer _raw = new(4096);
    private long _rawBase;

    public PassThroughEvents(IncrementalSseParser parser, StreamAccounting accounting)
    {
        _parser = parser;
        _accounting = accounting;
    }

    /// <summary>Forwards <paramref name="input"/> up to its last event boundary; the rest waits for its end.</summary>
    public void Process(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        var boundary = _rawBase;
        foreach (var segment in input)
        {
            _raw.Append(segment.Span);
            _parser.Append(segment.Span);
            while (_parser.TryRead(out var kind))
            {
                if (kind == SseItemKind.Event)
                {
                    _accounting.EventsWritten++;
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
            output.Write(_raw.WrittenSpan[..ready]);
            _raw.RemovePrefix(ready);
            _rawBase = boundary;
        }
    }

    /// <summary>The upstream ended cleanly: the rest goes out as it came, an unterminated last event included.</summary>
    public void Complete(IBufferWriter<byte> output)
    {
        output.Write(_raw.WrittenSpan);
        _raw.Clear();
    }

    /// <summary>Only whole events were forwarded: the partial one is dropped, so the client never dispatches half of it.</summary>
    public void DropPartialEvent() => _raw.Clear();

    public void Dispose() => _raw.Dispose();
}

using System.Diagnostics;
using System.Net.ServerSentEvents;

namespace Relay.Tests.Shared;

/// <summary>What a test client received: an event (its data) or a comment line, with when it arrived.</summary>
/// <param name="Data">The event's data (UTF-8), or empty for a comment.</param>
/// <param name="Comment">The comment's text (after <c>:</c> and leading spaces), or null for an event.</param>
/// <param name="ReceivedUs">Monotonic microseconds of the read that completed it.</param>
/// <param name="EventId">The event's id, as the parser gives it (<c>SseItem.EventId</c>); null for a comment.</param>
public sealed record SseReceived(byte[] Data, string? Comment, long ReceivedUs, string? EventId = null);

/// <summary>
/// The test projects' one SSE client: events are parsed by the framework's WHATWG parser
/// (<see cref="SseParser"/>), an implementation independent of Relay's. WHATWG clients drop comments, but tests
/// must see Relay's heartbeats, so the stream is handed to the parser one line per read and comment lines are noted
/// as they pass: entries come out in the order of the bytes, each stamped with the arrival of its bytes.
/// </summary>
public static class SseTestReader
{
    /// <summary>Monotonic microseconds, the clock of the simulated upstream's emit times.</summary>
    public static long NowUs() => (long)((Int128)Stopwatch.GetTimestamp() * 1_000_000 / Stopwatch.Frequency);

    /// <summary>
    /// Reads until the stream ends, the connection fails (what arrived until then is returned), or
    /// <paramref name="stopAfter"/> says so.
    /// </summary>
    public static async Task<List<SseReceived>> ReadAllAsync(Stream stream, Func<SseReceived, bool>? stopAfter = null, CancellationToken cancellationToken = default)
    {
        var received = new List<SseReceived>();
        var lines = new LineStream(stream, received);
        var parser = SseParser.Create(lines, (_, data) => data.ToArray());
        try
        {
            await foreach (var item in parser.EnumerateAsync(cancellationToken))
            {
                var entry = new SseReceived(item.Data, null, lines.LastReadUs, item.EventId);
                received.Add(entry);
                if (stopAfter?.Invoke(entry) == true)
                {
                    return received;
                }
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            // The connection ended abruptly: tests assert on what arrived before.
        }

        return received;
    }

    /// <summary>Gives the parser one line per read (so the order of comments and events is kept) and notes comments.</summary>
    private sealed class LineStream(Stream inner, List<SseReceived> received) : Stream
    {
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _start;
        private int _end;
        private bool _atLineStart = true;
        private List<byte>? _comment;

        public long LastReadUs { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
        {
            if (destination.IsEmpty)
            {
                return 0;
            }

            if (_start == _end)
            {
                _start = 0;
                _end = await inner.ReadAsync(_buffer, cancellationToken);
                LastReadUs = NowUs();
                if (_end == 0)
                {
                    return 0;
                }
            }

            var available = _buffer.AsSpan(_start, _end - _start);
            var newline = available.IndexOf((byte)'\n');
            var count = Math.Min(destination.Length, newline >= 0 ? newline + 1 : available.Length);
            var line = available[..count];
            if (_atLineStart && line[0] == (byte)':')
            {
                _comment = [];
            }

            _comment?.AddRange(line.ToArray());
            _atLineStart = line[^1] == (byte)'\n';
            if (_atLineStart && _comment is not null)
            {
                var text = System.Text.Encoding.UTF8.GetString([.. _comment]).TrimEnd('\n', '\r')[1..].TrimStart(' ');
                received.Add(new SseReceived([], text, LastReadUs));
                _comment = null;
            }

            line.CopyTo(destination.Span);
            _start += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

using System.Buffers;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Relay.Middleware.Cadence;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Tests.Support;

/// <summary>
/// Drives a <see cref="StreamEventPipeline"/> the way the relay loop does: reads of chosen sizes, time advancing
/// between them on a <see cref="FakeTimeProvider"/>, <see cref="StreamEventPipeline.OnDeadline"/> called exactly
/// at each deadline. Records when each output byte was written.
/// </summary>
internal sealed class PipelineDriver : IDisposable
{
    private readonly ArrayBufferWriter<byte> _output = new();

    public PipelineDriver(StreamPipelineSettings settings, IStreamEventSink? sink = null)
    {
        Pipeline = new StreamEventPipeline(settings, Time, sink);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public StreamEventPipeline Pipeline { get; }

    /// <summary>(timestamp, output length after the write) for every call that wrote something.</summary>
    public List<(long Time, int Length)> Writes { get; } = [];

    public ReadOnlySpan<byte> Output => _output.WrittenSpan;

    public string OutputText => Encoding.UTF8.GetString(_output.WrittenSpan);

    public void Process(ReadOnlySpan<byte> bytes)
    {
        Pipeline.Process(new ReadOnlySequence<byte>(bytes.ToArray()), _output);
        Record();
    }

    public void Process(string text) => Process(Encoding.UTF8.GetBytes(text));

    /// <summary>Lets time pass, waking the pipeline at each of its deadlines as the relay loop does.</summary>
    public void Advance(TimeSpan by)
    {
        var target = Time.GetTimestamp() + by.Ticks;
        while (Pipeline.FlushDeadline is { } deadline && deadline <= target)
        {
            var now = Time.GetTimestamp();
            if (deadline > now)
            {
                Time.Advance(TimeSpan.FromTicks(deadline - now));
            }

            Pipeline.OnDeadline(_output);
            Record();
        }

        var rest = target - Time.GetTimestamp();
        if (rest > 0)
        {
            Time.Advance(TimeSpan.FromTicks(rest));
        }
    }

    public void Complete()
    {
        Pipeline.Complete(_output);
        Record();
    }

    public void Fail(string message, string type, string? code)
    {
        Pipeline.Fail(_output, message, type, code);
        Record();
    }

    /// <summary>Feeds <paramref name="input"/> in random reads with random pauses, then completes.</summary>
    public void Replay(byte[] input, Random random, int maxReadSize, TimeSpan maxPause)
    {
        var position = 0;
        while (position < input.Length)
        {
            var size = Math.Min(random.Next(1, maxReadSize + 1), input.Length - position);
            Process(input.AsSpan(position, size));
            position += size;
            if (maxPause > TimeSpan.Zero)
            {
                Advance(TimeSpan.FromTicks((long)(random.NextDouble() * maxPause.Ticks)));
            }
        }

        Complete();
    }

    /// <summary>The data of every event the client would dispatch, parsed back with the relay's own parser.</summary>
    public List<byte[]> ClientEvents() => ParseEvents(_output.WrittenSpan);

    public static List<byte[]> ParseEvents(ReadOnlySpan<byte> sse)
    {
        using var parser = new IncrementalSseParser();
        parser.Append(sse);
        var events = new List<byte[]>();
        while (parser.TryRead(out var kind))
        {
            if (kind == SseItemKind.Event)
            {
                events.Add(parser.Data.ToArray());
            }
        }

        return events;
    }

    private void Record()
    {
        if (Writes.Count == 0 || Writes[^1].Length != _output.WrittenCount)
        {
            Writes.Add((Time.GetTimestamp(), _output.WrittenCount));
        }
    }

    public void Dispose() => Pipeline.Dispose();
}

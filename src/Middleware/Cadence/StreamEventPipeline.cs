using System.Buffers;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The event pipeline of one stream: incremental SSE parsing, event transforms (coalescing, UTF-8 repair,
/// accounting) and canonical SSE writing. Single consumer: not thread-safe.
/// </summary>
/// <remarks>PLACEHOLDER: passes bytes through until the cadence work lands.</remarks>
public sealed class StreamEventPipeline : IDisposable
{
    private readonly TimeProvider _timeProvider;

    /// <summary>Creates a pipeline for one stream.</summary>
    public StreamEventPipeline(StreamPipelineSettings settings, TimeProvider timeProvider)
    {
        Settings = settings;
        _timeProvider = timeProvider;
    }

    /// <summary>The settings in force.</summary>
    public StreamPipelineSettings Settings { get; }

    /// <summary>What the stream has seen and delivered.</summary>
    public StreamAccounting Accounting { get; } = new();

    /// <summary>When pending content must be flushed (a <see cref="TimeProvider.GetTimestamp"/> value), or null.</summary>
    public long? FlushDeadline => null;

    /// <summary>Whether the input so far ends at an event boundary (no partial event held).</summary>
    public bool AtEventBoundary { get; private set; } = true;

    /// <summary>Consumes all of <paramref name="input"/>; writes what is due to <paramref name="output"/>.</summary>
    public void Process(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        foreach (var segment in input)
        {
            output.Write(segment.Span);
        }
    }

    /// <summary>Writes what is due at the current time.</summary>
    public void OnDeadline(IBufferWriter<byte> output) => _ = _timeProvider;

    /// <summary>The upstream ended cleanly: write everything still held.</summary>
    public void Complete(IBufferWriter<byte> output)
    {
    }

    /// <summary>
    /// The stream must end with an error: write what is held, close any partial event, then a final
    /// <c>data: {"error":{...}}</c> event.
    /// </summary>
    public void Fail(IBufferWriter<byte> output, string message, string type, string? code)
    {
        output.Write("\n\n"u8);
        output.Write(System.Text.Encoding.UTF8.GetBytes(
            $"data: {{\"error\":{{\"message\":\"{message}\",\"type\":\"{type}\",\"code\":\"{code}\"}}}}\n\n"));
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }
}

namespace Relay.Middleware.Cadence;

/// <summary>What kind of event stream a pipeline handles.</summary>
internal enum StreamKind
{
    /// <summary>OpenAI <c>chat.completion.chunk</c> events: coalesced, UTF-8 repaired, usage accounted.</summary>
    ChatCompletions,

    /// <summary>Any other <c>text/event-stream</c>: bytes pass through untouched; only event boundaries are tracked.</summary>
    PassThrough,
}

/// <summary>
/// The settings of one stream's event pipeline, resolved from the route's configuration and the
/// request's <c>stream_options</c> (<c>chunk_size</c>, <c>flush_interval_ms</c>).
/// </summary>
internal sealed record StreamPipelineSettings
{
    /// <summary>The kind of stream.</summary>
    public StreamKind Kind { get; init; } = StreamKind.ChatCompletions;

    /// <summary>Whether consecutive content deltas are merged at all.</summary>
    public bool CoalescingEnabled { get; init; } = true;

    /// <summary>Flush a merged event once this many upstream content events have accumulated; 1 sends every token as it comes.</summary>
    public int MaxTokensPerFlush { get; init; } = 8;

    /// <summary>Flush a merged event at the latest this long after its first unflushed token arrived.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// The client did not ask for usage (<c>stream_options.include_usage</c>), but Relay asked the upstream
    /// for it for its own accounting: the usage-only chunk is consumed and not sent to the client.
    /// </summary>
    public bool StripUsageChunk { get; init; }

    /// <summary>Structured output: partial values and schema validation of the structured output, or null.</summary>
    internal StructuredOutput.StructuredOutputRequest? StructuredOutput { get; init; }
}

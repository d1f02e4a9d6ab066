using Relay.Middleware.Cadence;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Requests;

/// <summary>What Relay learned about one request and how it will relay the response.</summary>
internal sealed class RelayRequestFeature
{
    /// <summary>The settings of the request's route.</summary>
    public required RouteSettings Route { get; init; }

    /// <summary>The request's lifetime (client abort, timeouts, shutdown).</summary>
    public required StreamLifetime Lifetime { get; init; }

    /// <summary>The route's id, for accounting.</summary>
    public string? RouteId { get; init; }

    /// <summary>Whether this is a chat-completions request (its SSE response is a <c>chat.completion.chunk</c> stream).</summary>
    public bool IsChatCompletion { get; set; }

    /// <summary>The request body's <c>model</c>.</summary>
    public string? Model { get; set; }

    /// <summary>Whether the request asked for a stream.</summary>
    public bool Stream { get; set; }

    /// <summary>Whether the client itself asked for <c>stream_options.include_usage</c>.</summary>
    public bool ClientRequestedUsage { get; set; }

    /// <summary>Whether Relay added <c>include_usage</c> for its own accounting (the usage chunk is then not delivered).</summary>
    public bool RelayRequestedUsage { get; set; }

    /// <summary><c>stream_options.chunk_size</c>, when the client set it.</summary>
    public int? ChunkSize { get; set; }

    /// <summary><c>stream_options.flush_interval_ms</c> (a Relay extension), when the client set it.</summary>
    public int? FlushIntervalMs { get; set; }

    /// <summary><c>stream_options.resumable</c> (a Relay extension): the client asked for a stream it can resume.</summary>
    public bool Resumable { get; set; }

    /// <summary>The JSON body as the client sent it (before Relay's rewrite), what a stream ticket replays.</summary>
    public ReadOnlyMemory<byte> Body { get; set; }

    /// <summary>Structured output: what a streaming request asks of its structured output (<c>partial_json</c>, validation), or null.</summary>
    internal StructuredOutput.StructuredOutputRequest? StructuredOutput { get; set; }

    /// <summary>
    /// Set when the 200 and SSE headers went out before the upstream answered (heartbeats before the first byte):
    /// every later failure must be a final SSE error event.
    /// </summary>
    public Streaming.EarlyStreamStart? EarlyStart { get; set; }

    /// <summary>
    /// What the response's event pipeline saw and delivered, once an event stream is being relayed; the WebSocket
    /// bridge reads it for the usage it reports in <c>response.done</c>.
    /// </summary>
    public StreamAccounting? Accounting { get; set; }
}

using System.Text.Json.Serialization;

namespace MockInference;

/// <summary>
/// What the mock observed about one request: when it arrived, when each token left, when the client went
/// away. Times are <see cref="MonotonicClock"/> microseconds. Served as JSON by <c>GET /mock/requests/{id}</c>.
/// </summary>
/// <remarks>
/// The mock updates a live record while it streams; read it through the endpoint (which takes a consistent
/// snapshot) rather than holding on to an instance.
/// </remarks>
public sealed class MockRequestRecord
{
    /// <summary>The request id, also sent as the <c>x-mock-request-id</c> response header.</summary>
    [JsonPropertyName("id")]
    public string Id { get; set; } = "";

    [JsonPropertyName("path")]
    public string Path { get; set; } = "";

    /// <summary>The query string as received (<c>?a=1</c>, or empty), so a test can see what a proxy forwarded.</summary>
    [JsonPropertyName("query")]
    public string Query { get; set; } = "";

    /// <summary>The <c>Authorization</c> header as received, or null: the mock is a test upstream, its keys are test keys.</summary>
    [JsonPropertyName("authorization")]
    public string? Authorization { get; set; }

    [JsonPropertyName("arrived_us")]
    public long ArrivedUs { get; set; }

    /// <summary>When the first byte of the response body (or the error body) was flushed.</summary>
    [JsonPropertyName("first_byte_us")]
    public long? FirstByteUs { get; set; }

    /// <summary>One entry per token, the time the event carrying it was written (held tokens share a time).</summary>
    [JsonPropertyName("token_emit_us")]
    public List<long> TokenEmitUs { get; set; } = [];

    /// <summary>Tokens generated so far, across all choices.</summary>
    [JsonPropertyName("tokens_generated")]
    public int TokensGenerated { get; set; }

    /// <summary>When <c>HttpContext.RequestAborted</c> fired, taken inside its callback.</summary>
    [JsonPropertyName("aborted_us")]
    public long? AbortedUs { get; set; }

    [JsonPropertyName("tokens_at_abort")]
    public int? TokensAtAbort { get; set; }

    [JsonPropertyName("completed_us")]
    public long? CompletedUs { get; set; }

    /// <summary>The request body as received (UTF-8 decoded).</summary>
    [JsonPropertyName("request_body")]
    public string? RequestBody { get; set; }

    /// <summary>
    /// <c>in_progress</c>, <c>completed</c>, <c>error</c> (an HTTP error was returned), <c>failed</c>
    /// (an injected error event), <c>reset</c> (an injected connection abort) or <c>aborted</c> (the client went away).
    /// </summary>
    [JsonPropertyName("status")]
    public string Status { get; set; } = MockRequestStatus.InProgress;

    /// <summary>The HTTP status code sent.</summary>
    [JsonPropertyName("http_status")]
    public int HttpStatus { get; set; }

    /// <summary>Guards the mutable state: the streaming loop writes while the endpoint reads.</summary>
    [JsonIgnore]
    internal Lock Gate { get; } = new();
}

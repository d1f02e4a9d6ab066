namespace Relay.Middleware.StructuredOutput;

/// <summary>Streamed structured output (<c>response_format</c> <c>json_schema</c> or <c>json_object</c>), per route.</summary>
public sealed class StructuredOutputOptions
{
    /// <summary>
    /// Validate a streamed JSON reply against its schema as it streams, and end the stream with a
    /// <c>schema_violation</c> error event (cancelling the upstream) at the first violation no continuation can repair.
    /// A request overrides it with <c>stream_options.validate_schema</c>. Default on.
    /// </summary>
    public bool Validate { get; set; } = true;
}

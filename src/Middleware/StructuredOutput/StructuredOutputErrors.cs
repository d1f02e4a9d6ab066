namespace Relay.Middleware.StructuredOutput;

/// <summary>The error a stream ends with when its structured output breaks its schema.</summary>
internal static class StructuredOutputErrors
{
    /// <summary>The error type: the upstream's response is what is wrong, not the request.</summary>
    public const string Type = "invalid_response";

    /// <summary>The error code (also the stream's end reason in the usage record).</summary>
    public const string Code = "schema_violation";
}

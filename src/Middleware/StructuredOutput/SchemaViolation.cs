namespace Relay.Middleware.StructuredOutput;

/// <summary>The first place where a streamed document broke its schema (or stopped being JSON).</summary>
/// <param name="Pointer">The JSON Pointer (RFC 6901) of the offending value; empty for the root.</param>
/// <param name="Message">What is wrong, in words.</param>
internal sealed record SchemaViolation(string Pointer, string Message);

namespace Relay.Middleware.StructuredOutput;

/// <summary>Why and where a <see cref="PartialJsonParser"/> rejected its text.</summary>
/// <param name="BytePosition">The zero-based offset, in the UTF-8 text fed so far, of the byte that cannot be JSON
/// (the length of the text when the text ended too early).</param>
/// <param name="Message">What was wrong, in words.</param>
public sealed record PartialJsonError(long BytePosition, string Message);

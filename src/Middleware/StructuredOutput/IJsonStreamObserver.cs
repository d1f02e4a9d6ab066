using System.Text.Json;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// Hears a <see cref="PartialJsonParser"/>'s document as it is read, token by token, so that a check (the
/// incremental schema validator) can run as the text streams instead of once at the end.
/// </summary>
internal interface IJsonStreamObserver
{
    /// <summary>A value has begun and its kind is known from its first byte (so a wrong type is known at once).</summary>
    void OnValueStart(JsonValueKind kind);

    /// <summary>An object's property name is complete (before its colon and value).</summary>
    void OnPropertyName(ReadOnlySpan<byte> utf8Name);

    /// <summary>
    /// More decoded text of the string value in progress (UTF-8; a character may be split across two calls). Not
    /// called for property names.
    /// </summary>
    void OnStringChunk(ReadOnlySpan<byte> utf8);

    /// <summary>
    /// A value has ended: a scalar is complete (<paramref name="numberText"/> holds a number's text, empty
    /// otherwise), or a container has closed.
    /// </summary>
    void OnValueEnd(JsonValueKind kind, ReadOnlySpan<byte> numberText);
}

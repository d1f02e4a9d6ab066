namespace Relay.Middleware.Cadence;

/// <summary>Where a JSON string value sits in an event's data: <see cref="Start"/> is its opening quote.</summary>
internal struct JsonStringRange
{
    public int Start;
    public int End;

    public readonly bool IsPresent => End > Start;

    /// <summary>The raw content between the quotes, escapes intact.</summary>
    public readonly ReadOnlySpan<byte> Inner(ReadOnlySpan<byte> json) => json[(Start + 1)..(End - 1)];

    public readonly bool IsNonEmpty => End - Start > 2;
}

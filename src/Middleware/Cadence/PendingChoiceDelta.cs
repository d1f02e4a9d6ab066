using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Cadence;

/// <summary>
/// The content of one choice that has arrived but is not yet written: the decoded text of consecutive
/// tokens of one kind, and the first token's event, whose envelope the merged event reuses.
/// </summary>
internal sealed class PendingChoiceDelta : IDisposable
{
    private PooledByteBuffer? _logprobs;

    /// <summary>The first merged token's event data; the text field at <see cref="Field"/> is replaced on write.</summary>
    public PooledByteBuffer Envelope { get; } = new(512);

    /// <summary>Decoded UTF-8 text of complete characters, not yet written.</summary>
    public PooledByteBuffer Text { get; } = new(256);

    public JsonStringRange Field;

    /// <summary>Where the envelope's <c>logprobs</c> token list sits, when the run carries token logprobs.</summary>
    public JsonStringRange LogprobsField;

    /// <summary>Whether the tokens of this run carry a <c>logprobs</c> token list (all of them do, or none).</summary>
    public bool HasLogprobs;

    /// <summary>The elements of the merged tokens' logprobs lists, comma-separated, without brackets.</summary>
    public PooledByteBuffer Logprobs => _logprobs ??= new PooledByteBuffer(512);

    /// <summary>An incomplete trailing character, waiting for the rest in the next token.</summary>
    public Utf8Carry Carry;

    /// <summary>The choice's index.</summary>
    public int Index { get; init; }

    public DeltaKind Kind;
    public int ToolIndex;

    /// <summary>Upstream tokens merged into <see cref="Text"/> and not yet counted as delivered.</summary>
    public int Tokens;

    /// <summary>When <see cref="Text"/> must be written (a timestamp); meaningful only while it is not empty.</summary>
    public long Deadline;

    /// <summary>When text of this choice was last written (a timestamp); meaningful once <see cref="SeenContent"/>.</summary>
    public long LastFlush;

    /// <summary>When the choice's latest token arrived (a timestamp), or 0.</summary>
    public long LastTokenAt;

    /// <summary>Whether the latest token filled a flush before its slot: the upstream outpaces the cadence.</summary>
    public bool Fast;

    /// <summary>
    /// Whether the choice's text had a combining diacritical mark: decomposed text, whose final letters are held for
    /// the mark that may follow (<see cref="GraphemeHold"/>). Once set, it stays.
    /// </summary>
    public bool Decomposed;

    /// <summary>Whether the pending lone token's slot was already extended by the grace (once per slot).</summary>
    public bool Graced;

    /// <summary>Whether this choice has already delivered a content token (the first one is never delayed).</summary>
    public bool SeenContent;

    public bool HasText => Text.Length > 0;

    public void Dispose()
    {
        Envelope.Dispose();
        Text.Dispose();
        _logprobs?.Dispose();
    }
}

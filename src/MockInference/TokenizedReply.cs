using System.Text;

namespace MockInference;

/// <summary>A reply split into real tokens, already cut to the token limit. Immutable, so it can be cached.</summary>
internal sealed class TokenizedReply
{
    public TokenizedReply(ReadOnlyMemory<byte>[] pieces, bool truncated)
    {
        Pieces = pieces;
        Truncated = truncated;
        var length = 0;
        foreach (var piece in pieces)
        {
            length += piece.Length;
        }

        var utf8 = new byte[length];
        var offset = 0;
        foreach (var piece in pieces)
        {
            piece.Span.CopyTo(utf8.AsSpan(offset));
            offset += piece.Length;
        }

        Utf8 = utf8;

        // A cut inside a character leaves the first bytes of it; the text ends at the last whole character, as
        // the streamed content does in the hold and surrogates boundary modes.
        Text = Encoding.UTF8.GetString(utf8, 0, ContentSegmenter.CompleteLength(utf8));
    }

    /// <summary>The raw bytes of each token, in order.</summary>
    public ReadOnlyMemory<byte>[] Pieces { get; }

    public int TokenCount => Pieces.Length;

    /// <summary>True when the reply was cut by the token limit (finish_reason "length").</summary>
    public bool Truncated { get; }

    public string FinishReason => Truncated ? "length" : "stop";

    /// <summary>The concatenated token bytes.</summary>
    public byte[] Utf8 { get; }

    public string Text { get; }
}

namespace Relay.Middleware.Cadence;

/// <summary>Why <see cref="GraphemeHold"/> holds back the last grapheme cluster, which decides for how long.</summary>
internal enum GraphemeHoldKind
{
    /// <summary>Nothing is held.</summary>
    None,

    /// <summary>
    /// The text says the cluster goes on (a ZWJ, half a flag, an emoji; a letter of a script whose letters mostly take
    /// marks, or of decomposed text): held until the next token, within a bound.
    /// </summary>
    Likely,

    /// <summary>A combining mark could follow, and the next token is due before the next flush: held at most one interval.</summary>
    Possible,
}

namespace MockInference;

/// <summary>How a token that is not a whole character is written (<c>x-mock-token-boundary</c>).</summary>
internal enum TokenBoundaryMode
{
    /// <summary>Like vLLM: incomplete UTF-8 is held until the character completes.</summary>
    Hold,

    /// <summary>Like UTF-16 servers: a non-BMP character's surrogate halves go in separate events as \uXXXX escapes.</summary>
    Surrogates,

    /// <summary>Like some llama.cpp builds: a token's partial UTF-8 bytes are written raw into the JSON string.</summary>
    RawBytes,
}

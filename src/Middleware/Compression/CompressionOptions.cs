namespace Relay.Middleware.Compression;

/// <summary>Response compression of a route's event streams (gzip, Brotli at its fastest level); off by default.</summary>
public sealed class CompressionOptions
{
    /// <summary>
    /// Compress the route's responses (event streams and JSON) for clients that send <c>Accept-Encoding</c>. Each
    /// event still reaches the client when it is flushed. Mind BREACH (docs/operations.md, "Compression"). Default off.
    /// </summary>
    public bool Enabled { get; set; }
}

namespace Relay.Middleware.Configuration;

/// <summary>Backpressure settings.</summary>
public sealed class BackpressureOptions
{
    /// <summary>
    /// At most this many bytes are held for one stream's client before Relay stops reading the upstream
    /// (which pushes back over TCP). Default 64 KiB.
    /// </summary>
    public int MaxBufferedBytes { get; set; } = 64 * 1024;
}

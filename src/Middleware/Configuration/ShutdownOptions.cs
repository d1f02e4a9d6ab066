namespace Relay.Middleware.Configuration;

/// <summary>Graceful shutdown.</summary>
public sealed class ShutdownOptions
{
    /// <summary>On SIGTERM, streams in flight get this long to finish before they are ended with an error event. Default 10 s.</summary>
    public double DrainSeconds { get; set; } = 10;
}

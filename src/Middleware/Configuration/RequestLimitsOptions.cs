namespace Relay.Middleware.Configuration;

/// <summary>Request limits.</summary>
public sealed class RequestLimitsOptions
{
    /// <summary>The largest request body accepted (413 beyond). Default 8 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8 * 1024 * 1024;
}

namespace Relay.Middleware.Configuration;

/// <summary>Timeouts. Zero disables one.</summary>
public sealed class TimeoutOptions
{
    /// <summary>
    /// Until the first byte goes to the client (upstream headers and first event). When it fires nothing
    /// was sent, so the client gets a 504 with an OpenAI-style error. Default 60 s.
    /// </summary>
    public double FirstTokenSeconds { get; set; } = 60;

    /// <summary>No upstream bytes for this long mid-stream ends the stream with a timeout error event. Default 60 s.</summary>
    public double IdleSeconds { get; set; } = 60;

    /// <summary>The hard maximum duration of one request. Default 30 minutes.</summary>
    public double MaxDurationSeconds { get; set; } = 1800;

    /// <summary>The largest value a client may ask for with the <c>Relay-Timeout</c> header. Default 30 minutes.</summary>
    public double MaxRequestTimeoutSeconds { get; set; } = 1800;

    /// <summary>A client that accepts no bytes for this long is dropped and the upstream cancelled. Default 30 s.</summary>
    public double WriteStallSeconds { get; set; } = 30;
}

namespace Relay.Middleware.Configuration;

/// <summary>SSE heartbeats: <c>: keep-alive</c> comments written during upstream silence.</summary>
public sealed class HeartbeatOptions
{
    /// <summary>Write a heartbeat after this many seconds without a write to the client. 0 turns them off. Default 15 s.</summary>
    public double IntervalSeconds { get; set; } = 15;

    /// <summary>
    /// Also send heartbeats before the upstream's first byte: the 200 and SSE headers go out at the first
    /// heartbeat, so an upstream error after that point arrives as a final SSE error event instead of an HTTP
    /// status. Default off.
    /// </summary>
    public bool BeforeFirstByte { get; set; }
}

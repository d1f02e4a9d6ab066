namespace Relay.Middleware.Cancellation;

/// <summary>How a relayed request ended.</summary>
public enum StreamEndReason
{
    /// <summary>Still running.</summary>
    None,

    /// <summary>The upstream finished and everything was delivered.</summary>
    Completed,

    /// <summary>The client went away (socket closed, HTTP/2 RST_STREAM, AbortController).</summary>
    ClientCancelled,

    /// <summary>No byte reached the client within the time-to-first-token timeout.</summary>
    FirstTokenTimeout,

    /// <summary>The upstream sent nothing for the idle timeout mid-stream.</summary>
    IdleTimeout,

    /// <summary>The request ran past its hard maximum duration.</summary>
    MaxDurationTimeout,

    /// <summary>The client accepted no bytes for the write-stall time.</summary>
    WriteStallTimeout,

    /// <summary>The upstream failed: refused, reset, truncated, or an error event.</summary>
    UpstreamError,

    /// <summary>Relay shut down before the stream finished.</summary>
    RelayShutdown,

    /// <summary>The structured output broke its schema (<c>response_format</c>); Relay cancelled the upstream.</summary>
    SchemaViolation,
    /// <summary>A resumable stream had no reader for <c>Resume:DetachedSeconds</c> after its client left.</summary>
    DetachedTimeout,

    /// <summary>A resumable stream was stopped by <c>POST /relay/v1/streams/{id}/cancel</c>.</summary>
    CancelledByRequest,
}

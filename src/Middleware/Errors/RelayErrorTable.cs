using Microsoft.AspNetCore.Http;
using Relay.Middleware.Cancellation;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Errors;

/// <summary>
/// The one table of how requests and streams end (docs/design.md, "One table of errors"): every
/// <see cref="StreamEndReason"/> and every YARP <see cref="ForwarderError"/> maps to one
/// (status, type, code, message). Used before the first byte (Relay's HTTP error), as the final SSE event, as the
/// WebSocket <c>error</c> and <c>response.done</c>, and, by name, in the usage record.
/// </summary>
internal static class RelayErrorTable
{
    /// <summary>
    /// What the client is told when a stream ends for <paramref name="reason"/>; null when it ended well
    /// (<see cref="StreamEndReason.Completed"/>, or still running). <paramref name="connectionFailed"/>: an
    /// <see cref="StreamEndReason.UpstreamError"/> came from the upstream's connection failing (a read threw), not
    /// from the upstream ending its body early.
    /// </summary>
    public static RelayErrorDescription? ForEndReason(StreamEndReason reason, bool connectionFailed = false) => reason switch
    {
        StreamEndReason.None or StreamEndReason.Completed => null,

        // Nobody is left to tell over HTTP; a WebSocket session that outlives its response still reports it.
        StreamEndReason.ClientCancelled => new(StatusCodes.Status499ClientClosedRequest, RelayErrorTypes.InvalidRequest, "client_cancelled",
            "The client cancelled the request."),
        StreamEndReason.FirstTokenTimeout => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.Timeout, "first_token_timeout",
            "The upstream did not start responding within the time-to-first-token timeout."),
        StreamEndReason.IdleTimeout => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.Timeout, "idle_timeout",
            "The upstream sent nothing within the idle timeout."),
        StreamEndReason.MaxDurationTimeout => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.Timeout, "max_duration_timeout",
            "The request ran past its maximum duration."),
        StreamEndReason.WriteStallTimeout => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.Timeout, "write_stall_timeout",
            "The client read nothing for the write-stall time; the response was cancelled."),
        StreamEndReason.RelayShutdown => new(StatusCodes.Status503ServiceUnavailable, RelayErrorTypes.RelayShutdown, "relay_shutdown",
            "Relay is shutting down; the response was ended."),
        StreamEndReason.CancelledByRequest => new(StatusCodes.Status499ClientClosedRequest, RelayErrorTypes.InvalidRequest, "stream_cancelled",
            "The stream was cancelled."),
        StreamEndReason.DetachedTimeout => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.InvalidRequest, "stream_detached_timeout",
            "The stream had no reader for its detached time and was cancelled."),
        StreamEndReason.SchemaViolation => new(StatusCodes.Status502BadGateway, StructuredOutput.StructuredOutputErrors.Type, StructuredOutput.StructuredOutputErrors.Code,
            "The model's output does not match the response_format schema."),
        _ => new(StatusCodes.Status502BadGateway, RelayErrorTypes.UpstreamError, "upstream_disconnected", connectionFailed
            ? "The upstream connection failed before the stream was complete."
            : "The upstream failed before the stream was complete."),
    };

    /// <summary>
    /// As <see cref="ForEndReason"/>, for a stream known to have failed: one that reports no failure of its own
    /// (<see cref="StreamEndReason.None"/>, <see cref="StreamEndReason.Completed"/>) failed upstream.
    /// </summary>
    public static RelayErrorDescription ForFailedEnd(StreamEndReason reason, bool connectionFailed = false)
        => ForEndReason(reason, connectionFailed) ?? ForEndReason(StreamEndReason.UpstreamError, connectionFailed)!.Value;

    /// <summary>
    /// What the client is told when YARP's forwarder failed before the response started. A stream end reason that
    /// Relay set itself (a timeout, the shutdown) says more than the forwarder's error and wins; a client that went
    /// away is told nothing (null). <paramref name="rejectedBodyStatus"/>: the status the server chose when it
    /// rejected the request body (413 too large, 408 too slow), or 0.
    /// </summary>
    public static RelayErrorDescription? ForForwarderError(ForwarderError error, StreamEndReason reason, int rejectedBodyStatus = 0)
    {
        switch (reason)
        {
            case StreamEndReason.ClientCancelled:
                return null;
            case StreamEndReason.FirstTokenTimeout or StreamEndReason.MaxDurationTimeout or StreamEndReason.RelayShutdown:
                return ForEndReason(reason);
        }

        return error switch
        {
            ForwarderError.RequestTimedOut => new(StatusCodes.Status504GatewayTimeout, RelayErrorTypes.Timeout, "upstream_timeout",
                "The upstream did not respond in time."),
            ForwarderError.RequestBodyClient or ForwarderError.RequestBodyCanceled => ForRequestBody(rejectedBodyStatus),
            ForwarderError.NoAvailableDestinations => new(StatusCodes.Status503ServiceUnavailable, RelayErrorTypes.UpstreamError, "no_upstream",
                "No upstream is available for this route."),
            ForwarderError.Request or ForwarderError.RequestCreation => new(StatusCodes.Status502BadGateway, RelayErrorTypes.UpstreamError, "upstream_unreachable",
                "The upstream could not be reached."),
            _ => new(StatusCodes.Status502BadGateway, RelayErrorTypes.UpstreamError, "upstream_error", "The upstream failed to respond."),
        };
    }

    /// <summary>
    /// A request body that could not be read, by the status the server chose when it rejected it
    /// (<paramref name="rejectedStatus"/>: 413 too large, 408 too slow, 0 otherwise); <paramref name="limit"/> names the
    /// limit when it is known.
    /// </summary>
    public static RelayErrorDescription ForRequestBody(int rejectedStatus, long? limit = null) => rejectedStatus switch
    {
        StatusCodes.Status413PayloadTooLarge => new(StatusCodes.Status413PayloadTooLarge, RelayErrorTypes.InvalidRequest, "request_too_large", limit is { } bytes
            ? $"The request body is larger than the limit of {bytes} bytes."
            : "The request body is larger than the limit."),

        // Too slow for the server's minimum data rate (Kestrel's MinRequestBodyDataRate): a 408, as nginx answers when
        // its client_body_timeout fires, not a 400 for a body that was never malformed.
        StatusCodes.Status408RequestTimeout => new(StatusCodes.Status408RequestTimeout, RelayErrorTypes.Timeout, "request_body_timeout",
            "The request body was not received in time: the upload was too slow."),
        _ => new(StatusCodes.Status400BadRequest, RelayErrorTypes.InvalidRequest, "invalid_body", "The request body could not be read."),
    };

    /// <summary>
    /// The name of an end reason in the usage record (<c>relay.stream.end_reason</c>, <c>error.type</c>) and in the
    /// WebSocket <c>response.done</c>'s <c>status_details.reason</c>.
    /// </summary>
    public static string EndReasonName(StreamEndReason reason) => reason switch
    {
        StreamEndReason.Completed => "completed",
        StreamEndReason.ClientCancelled => "client_cancelled",
        StreamEndReason.FirstTokenTimeout => "first_token_timeout",
        StreamEndReason.IdleTimeout => "idle_timeout",
        StreamEndReason.MaxDurationTimeout => "max_duration_timeout",
        StreamEndReason.WriteStallTimeout => "write_stall_timeout",
        StreamEndReason.UpstreamError => "upstream_error",
        StreamEndReason.RelayShutdown => "relay_shutdown",
        StreamEndReason.SchemaViolation => StructuredOutput.StructuredOutputErrors.Code,
        StreamEndReason.CancelledByRequest => "stream_cancelled",
        StreamEndReason.DetachedTimeout => "stream_detached_timeout",
        _ => "unknown",
    };
}

using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;

namespace Relay.Middleware.Resilience;

/// <summary>
/// Which failures before the first byte are retried (docs/operations.md, "Retries, failover and circuit breakers"). Only an attempt that provably
/// produced nothing for the client may be retried, and by default only one where the upstream provably did no
/// (billable) work either: it could not be reached, or it refused the request with a <c>Retry-After</c>.
/// </summary>
internal static class RetryRules
{
    /// <summary>
    /// Whether an upstream answer with <paramref name="status"/> is retried, and after how long (null: backoff).
    /// A 4xx other than 429 is the request's own fault and is never retried.
    /// </summary>
    public static bool ShouldRetryStatus(int status, TimeSpan? retryAfter, ResilienceOptions options, TimeSpan? remaining)
    {
        var retryable = status switch
        {
            // "429 Too Many Requests ... MAY include a Retry-After header" (RFC 6585 section 4); "503 ... The server MAY send
            // a Retry-After header field to suggest an appropriate amount of time for the client to wait" (RFC 9110
            // section 15.6.4). With it, the upstream says it did not take the request on.
            StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable => retryAfter is not null || options.RetryAmbiguousFailures,
            StatusCodes.Status502BadGateway or StatusCodes.Status504GatewayTimeout => options.RetryAmbiguousFailures,
            _ => false,
        };
        if (!retryable)
        {
            return false;
        }

        if (retryAfter is { } wait)
        {
            // Asked to wait longer than the route allows, or than the first-token timeout leaves: the client gets the
            // upstream's answer now and can decide itself.
            return wait.TotalSeconds <= options.MaxRetryAfterSeconds && (remaining is not { } left || wait < left);
        }

        return true;
    }

    /// <summary>Whether a transport failure before the response headers is retried.</summary>
    public static bool ShouldRetryException(Exception? exception, ResilienceOptions options)
        => Classify(exception) switch
        {
            TransportFailure.NotConnected => true,
            TransportFailure.AfterSend => options.RetryAmbiguousFailures,
            _ => false,
        };

    /// <summary>
    /// The <c>Retry-After</c> of a response, as seconds or an HTTP date (RFC 9110 section 10.2.3:
    /// "Retry-After = HTTP-date / delay-seconds"), relative to <paramref name="now"/>.
    /// </summary>
    public static TimeSpan? RetryAfter(HttpResponseMessage response, DateTimeOffset now)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (header?.Date is { } date)
        {
            var wait = date - now;
            return wait < TimeSpan.Zero ? TimeSpan.Zero : wait;
        }

        return null;
    }

    /// <summary>What a transport failure says about whether the upstream saw the request.</summary>
    public static TransportFailure Classify(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError }:
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound }:
                    return TransportFailure.NotConnected;
                case HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded }:
                    return TransportFailure.AfterSend;
            }
        }

        return exception is HttpRequestException or IOException ? TransportFailure.AfterSend : TransportFailure.Other;
    }
}

/// <summary>What a transport failure says about the upstream's work.</summary>
internal enum TransportFailure
{
    /// <summary>Not a transport failure Relay recognises.</summary>
    Other,

    /// <summary>No connection was made: the upstream never saw the request.</summary>
    NotConnected,

    /// <summary>The connection broke after the request was (partly) sent: the upstream may have started work.</summary>
    AfterSend,
}

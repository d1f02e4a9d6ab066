using Microsoft.AspNetCore.Http;
using Relay.Middleware.Errors;

namespace Relay.Middleware.State;

/// <summary>The answer to a request that needs the shared state store while it is down.</summary>
internal static class StateStoreUnavailable
{
    public const string Code = "state_store_unavailable";

    /// <summary>Seconds a client is told to wait: the client library reconnects in about this long.</summary>
    public const int RetryAfterSeconds = 2;

    public static Task<bool> WriteAsync(HttpContext context)
        => OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status503ServiceUnavailable,
            "Relay's shared state store is unavailable; try again shortly.", RelayErrorTypes.ServerError, Code, RetryAfterSeconds);
}

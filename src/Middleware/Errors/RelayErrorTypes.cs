namespace Relay.Middleware.Errors;

/// <summary>The <c>type</c> values of errors Relay itself produces (OpenAI's where one exists).</summary>
internal static class RelayErrorTypes
{
    /// <summary>The request is malformed (OpenAI's type).</summary>
    public const string InvalidRequest = "invalid_request_error";

    /// <summary>Authentication failed (OpenAI's type).</summary>
    public const string Authentication = "authentication_error";

    /// <summary>The upstream failed or could not be reached.</summary>
    public const string UpstreamError = "upstream_error";

    /// <summary>One of Relay's timeouts fired; the code says which.</summary>
    public const string Timeout = "timeout";

    /// <summary>Relay is shutting down and ended the stream.</summary>
    public const string RelayShutdown = "relay_shutdown";

    /// <summary>Something failed inside Relay (OpenAI's type for server faults).</summary>
    public const string ServerError = "server_error";
}

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Relay.Middleware.Errors;

/// <summary>
/// What an unhandled exception becomes: ASP.NET Core's exception handler middleware logs it at Error
/// (<c>UnhandledException</c>, with the exception's type, message and stack; never the request's headers or body)
/// and Relay answers an OpenAI-style 500 instead of an HTML page or a stack trace. A client that went away gets
/// nothing (the middleware logs that at Debug); a response that already started is left to the server, which logs
/// the exception and aborts the connection.
/// </summary>
internal static class RelayExceptionHandler
{
    public static ExceptionHandlerOptions Options() => new()
    {
        ExceptionHandler = WriteAsync,
        // Record the exception even where the host also registers an IExceptionHandler that reports it handled.
        SuppressDiagnosticsCallback = static _ => false,
    };

    private static Task WriteAsync(HttpContext context)
        => OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status500InternalServerError,
            "Relay failed to process the request.", RelayErrorTypes.ServerError, "relay_error");
}

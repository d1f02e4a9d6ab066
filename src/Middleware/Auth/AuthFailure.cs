using Microsoft.AspNetCore.Http;
using Relay.Middleware.Errors;

namespace Relay.Middleware.Auth;

/// <summary>Why a request is not let through, as the OpenAI-style error the client receives.</summary>
internal sealed record AuthFailure(int Status, string Message, string Type, string Code)
{
    /// <summary>Writes the error response (before the first byte).</summary>
    public Task WriteAsync(HttpContext context) => OpenAIError.TryWriteResponseAsync(context, Status, Message, Type, Code);

    internal static AuthFailure Unauthorized(string message, string code) => new(StatusCodes.Status401Unauthorized, message, RelayErrorTypes.Authentication, code);

    internal static AuthFailure BadRequest(string message, string code) => new(StatusCodes.Status400BadRequest, message, RelayErrorTypes.InvalidRequest, code);
}

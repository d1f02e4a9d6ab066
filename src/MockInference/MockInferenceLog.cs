using Microsoft.Extensions.Logging;

namespace MockInference;

internal static partial class MockInferenceLog
{
    [LoggerMessage(EventId = 1, EventName = "InjectedStatus", Level = LogLevel.Debug,
        Message = "Request {RequestId}: answering with injected status {Status}")]
    public static partial void InjectedStatus(ILogger logger, string requestId, int status);

    [LoggerMessage(EventId = 2, EventName = "InjectedFailure", Level = LogLevel.Debug,
        Message = "Request {RequestId}: injected {FailMode} failure after {Tokens} tokens")]
    public static partial void InjectedFailure(ILogger logger, string requestId, FailMode failMode, int tokens);

    [LoggerMessage(EventId = 3, EventName = "ClientAborted", Level = LogLevel.Debug,
        Message = "Request {RequestId}: client went away after {Tokens} tokens")]
    public static partial void ClientAborted(ILogger logger, string requestId, int tokens);

    [LoggerMessage(EventId = 4, EventName = "BadRequest", Level = LogLevel.Debug,
        Message = "Request {RequestId}: rejected with 400: {Reason}")]
    public static partial void BadRequest(ILogger logger, string requestId, string reason);
}

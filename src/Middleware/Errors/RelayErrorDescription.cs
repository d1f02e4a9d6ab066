namespace Relay.Middleware.Errors;

/// <summary>
/// One row of <see cref="RelayErrorTable"/>: what the client is told about one way a request or stream ends, as an
/// HTTP error before the first byte (<see cref="Status"/>), and as the OpenAI error object of the final SSE event,
/// the WebSocket <c>error</c> and <c>response.done</c> (<see cref="Type"/>, <see cref="Code"/>, <see cref="Message"/>).
/// </summary>
internal readonly record struct RelayErrorDescription(int Status, string Type, string? Code, string Message);

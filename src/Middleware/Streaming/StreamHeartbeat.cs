namespace Relay.Middleware.Streaming;

/// <summary>The heartbeats of one stream.</summary>
/// <param name="Interval">Silence (no write to the client) after which a <c>: keep-alive</c> comment is written; zero: none.</param>
/// <param name="BeforeFirstByte">Whether heartbeats run before the first event reached the client (they start the response).</param>
internal readonly record struct StreamHeartbeat(TimeSpan Interval, bool BeforeFirstByte);

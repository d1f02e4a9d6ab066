namespace Relay.Middleware.Resume;

/// <summary>
/// Resumable streams, per route: a chat stream whose request sets <c>stream_options.resumable: true</c> gets
/// an SSE <c>id:</c> on every event and a <c>Relay-Stream-Id</c> header; its events are kept in Redis, so a client that
/// lost its connection resumes it on any instance with <c>Last-Event-ID</c>. Needs <c>Relay:State:Redis</c>.
/// </summary>
public sealed class ResumeOptions
{
    /// <summary>Whether requests on the route may ask for a resumable stream. Default off.</summary>
    public bool Enabled { get; set; }

    /// <summary>How long generation goes on without a reader after the client left, before it is cancelled. Default 30 s.</summary>
    public double DetachedSeconds { get; set; } = 30;

    /// <summary>How long a finished stream can still be replayed. Default 300 s.</summary>
    public double RetentionSeconds { get; set; } = 300;

    /// <summary>The most events kept for one stream (the Redis Stream is capped near this length). Default 10000.</summary>
    public int MaxEvents { get; set; } = 10_000;

    /// <summary>
    /// The longest one HTTP response of a resumable stream lasts, for an edge or load balancer that cuts longer responses
    /// (Cloudflare Workers: 30 s free, 60 s paid): at it, the response ends cleanly at an event boundary with a short
    /// <c>retry:</c>, the generation goes on, and the client resumes with <c>Last-Event-ID</c> (EventSource by itself).
    /// Applies to the response that starts the stream and to every resuming one. Set it a few seconds below the edge's
    /// cap. Default 0: off.
    /// </summary>
    public double MaxResponseSeconds { get; set; }
}

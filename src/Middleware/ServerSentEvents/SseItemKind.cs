namespace Relay.Middleware.ServerSentEvents;

/// <summary>What <see cref="IncrementalSseParser.TryRead"/> surfaced.</summary>
internal enum SseItemKind
{
    /// <summary>A dispatched event: <see cref="IncrementalSseParser.Data"/> and friends describe it.</summary>
    Event,

    /// <summary>A comment line (<c>:text</c>): WHATWG ignores it, but a relay must preserve it (keep-alives).</summary>
    Comment,

    /// <summary>A valid <c>retry</c> field: WHATWG applies it at once, not at dispatch.</summary>
    Retry,

    /// <summary>
    /// A block that set the last event ID but dispatched no event (no <c>data</c>): WHATWG still sets the event
    /// source's last event ID, so a relay must forward it (<see cref="IncrementalSseParser.LastEventId"/>).
    /// </summary>
    Id,
}

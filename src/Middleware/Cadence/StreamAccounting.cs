namespace Relay.Middleware.Cadence;

/// <summary>What a stream's event pipeline has seen and delivered, for usage accounting.</summary>
internal sealed class StreamAccounting
{
    /// <summary>Upstream events that carried content (text, refusal, tool-call arguments): one per generated token.</summary>
    public long UpstreamContentEvents { get; internal set; }

    /// <summary>Upstream content events whose content has been written to the client.</summary>
    public long DeliveredContentEvents { get; internal set; }

    /// <summary>Events written to the client.</summary>
    public long EventsWritten { get; internal set; }

    /// <summary>The <c>model</c> of the first chunk, if any.</summary>
    public string? Model { get; internal set; }

    /// <summary>Usage reported by the upstream, when it arrived.</summary>
    public long? PromptTokens { get; internal set; }

    /// <summary>Completion tokens reported by the upstream, when it arrived.</summary>
    public long? CompletionTokens { get; internal set; }

    /// <summary>Whether <c>data: [DONE]</c> was seen.</summary>
    public bool DoneSeen { get; internal set; }

    /// <summary>Whether the upstream sent an error object inside the stream.</summary>
    public bool UpstreamErrorSeen { get; internal set; }

    /// <summary>A chat chunk was written that delivers the content of <paramref name="contentEvents"/> upstream events.</summary>
    internal void OnChunkWritten(long contentEvents)
    {
        EventsWritten++;
        DeliveredContentEvents += contentEvents;
    }
}

using Relay.Middleware.Cancellation;

namespace Relay.Middleware.Accounting;

/// <summary>What one relayed stream cost and how it ended: "you only pay for what was generated".</summary>
public sealed record StreamUsageRecord
{
    /// <summary>The YARP route id.</summary>
    public string? Route { get; init; }

    /// <summary>The upstream destination (scheme, host and port only; never credentials or query).</summary>
    public string? Upstream { get; init; }

    /// <summary>The requested model (or the one the upstream reported).</summary>
    public string? Model { get; init; }

    /// <summary>Prompt tokens, from the upstream's usage when it arrived.</summary>
    public long? PromptTokens { get; init; }

    /// <summary>Completion tokens generated: the upstream's usage when it arrived, else counted from content events.</summary>
    public long CompletionTokensGenerated { get; init; }

    /// <summary>Whether <see cref="CompletionTokensGenerated"/> was counted by Relay (no usage arrived).</summary>
    public bool CompletionTokensCounted { get; init; }

    /// <summary>Completion tokens (upstream content events) whose content reached the client.</summary>
    public long CompletionTokensDelivered { get; init; }

    /// <summary>Time to the first byte sent to the client, when there was one.</summary>
    public TimeSpan? TimeToFirstToken { get; init; }

    /// <summary>The whole request's duration.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>How it ended.</summary>
    public StreamEndReason EndReason { get; init; }

    /// <summary>Upstream attempts made for the request, the first included (retries and failover before the first byte).</summary>
    public int UpstreamAttempts { get; init; } = 1;

    /// <summary>The destination id of each attempt, in order.</summary>
    public IReadOnlyList<string> UpstreamDestinations { get; init; } = [];
}

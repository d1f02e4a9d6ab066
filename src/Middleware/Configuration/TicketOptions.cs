namespace Relay.Middleware.Configuration;

/// <summary>One-time stream tickets.</summary>
public sealed class TicketOptions
{
    /// <summary>Whether <c>POST /relay/v1/tickets</c> and <c>GET /relay/v1/streams/{ticket}</c> are served. Default on.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long a ticket can be redeemed after it was issued. Default 60 s.</summary>
    public double LifetimeSeconds { get; set; } = 60;

    /// <summary>
    /// The HMAC-SHA256 key tickets are signed with, base64, at least 32 bytes. Empty: a random key is generated at
    /// start, so tickets do not survive a restart and cannot be redeemed on another instance; set one shared key
    /// (and a shared ticket store) when several instances sit behind a load balancer.
    /// </summary>
    public string? SigningKey { get; set; }

    /// <summary>The chat-completions path a ticket streams from when the issuing request names none. Default <c>/v1/chat/completions</c>.</summary>
    public string ChatCompletionsPath { get; set; } = "/v1/chat/completions";

    /// <summary>
    /// The AES-256-GCM key, base64 of 32 random bytes (<c>openssl rand -base64 32</c>), that seals a ticket's
    /// request and credential at rest in a shared store. Required with <c>Relay:State:Redis</c>; the same on every instance.
    /// </summary>
    public string? EncryptionKey { get; set; }
}

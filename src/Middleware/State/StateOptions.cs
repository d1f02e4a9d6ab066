namespace Relay.Middleware.State;

/// <summary>
/// Where Relay keeps state that several instances share: stream tickets and resumable streams. Global.
/// </summary>
public sealed class StateOptions
{
    /// <summary>
    /// A StackExchange.Redis connection string (for example <c>redis:6379,password=...</c>). Set: tickets and
    /// resumable streams live in Redis, so any instance behind the load balancer can redeem a ticket or resume a
    /// stream another issued; <c>Relay:Tickets:EncryptionKey</c> (and a shared <c>Relay:Tickets:SigningKey</c>) are
    /// then required. Empty: one instance, in memory.
    /// </summary>
    public string? Redis { get; set; }
}

namespace Relay.Middleware.Configuration;

/// <summary>The playground page.</summary>
public sealed class PlaygroundOptions
{
    /// <summary>
    /// Serve the playground at <c>GET /</c>. Unset: on in the Relay host's demo mode (in front of its built-in
    /// simulated upstream), off otherwise (<c>MapRelay</c> maps it only when true; an explicit
    /// <c>MapRelayPlayground()</c> maps it unless false).
    /// </summary>
    public bool? Enabled { get; set; }
}

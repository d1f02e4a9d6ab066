namespace Relay.Middleware.Configuration;

/// <summary>One Relay-issued client key.</summary>
public sealed class RelayKeyOptions
{
    /// <summary>A name for logs and accounting (never the key).</summary>
    public string Name { get; set; } = "";

    /// <summary>The SHA-256 of the key's UTF-8 bytes, as 64 hex digits (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    public string Sha256 { get; set; } = "";

    /// <summary>Route ids the key may call; empty: every route in relay-keys mode.</summary>
    public List<string> Routes { get; set; } = [];
}

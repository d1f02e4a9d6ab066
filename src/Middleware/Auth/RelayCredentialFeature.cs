namespace Relay.Middleware.Auth;

/// <summary>The credential that authenticated a request (what a stream ticket issued on it carries forward).</summary>
internal sealed class RelayCredentialFeature(PresentedCredential? credential, string? keyName)
{
    /// <summary>The presented credential, or null where the route let the request through without one.</summary>
    public PresentedCredential? Credential { get; } = credential;

    /// <summary>The name of the Relay key, in relay-keys mode.</summary>
    public string? KeyName { get; } = keyName;
}

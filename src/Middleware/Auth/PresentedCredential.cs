namespace Relay.Middleware.Auth;

/// <summary>A credential a client presented.</summary>
/// <param name="Token">The bearer token (a Relay key, or the upstream key in pass-through mode).</param>
/// <param name="AuthorizationValue">The <c>Authorization</c> header value that carries it upstream in pass-through mode.</param>
/// <param name="Source">Where it came from.</param>
public sealed record PresentedCredential(string Token, string AuthorizationValue, CredentialSource Source)
{
    /// <summary>Never the secret itself: records print as their source only.</summary>
    public override string ToString() => $"credential from {Source}";
}

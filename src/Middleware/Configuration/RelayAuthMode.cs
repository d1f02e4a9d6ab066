namespace Relay.Middleware.Configuration;

/// <summary>How a route authenticates its callers.</summary>
public enum RelayAuthMode
{
    /// <summary>The client's own <c>Authorization</c> goes to the upstream unchanged; the upstream decides.</summary>
    PassThrough,

    /// <summary>
    /// Clients present a Relay-issued key (checked against <see cref="RelayOptions.RelayKeys"/>); Relay replaces
    /// it with the route's <see cref="AuthOptions.UpstreamApiKey"/>, which clients never see.
    /// </summary>
    RelayKeys,
}

namespace Relay.Middleware.Hosting;

/// <summary>
/// The two services of the host that <c>AddRelay</c> replaces, because Relay's behaviour needs them and they cannot be
/// added beside the host's own. <see cref="All"/> unless the app has its own and gives the behaviour up.
/// </summary>
[Flags]
public enum RelayHostIntegration
{
    /// <summary>Neither: the app keeps its own CORS policy provider and its own server.</summary>
    None = 0,

    /// <summary>
    /// Replaces <c>ICorsPolicyProvider</c> with Relay's, which builds per-route policies from <c>Relay:Cors:*</c> and
    /// answers every preflight itself. Without it, <c>Cors:AllowedOrigins</c> and <c>Cors:PreflightMaxAgeSeconds</c>
    /// are refused at start-up, and CORS is the app's provider's business (named YARP route policies still work).
    /// </summary>
    CorsPolicyProvider = 1,

    /// <summary>
    /// Wraps the registered <c>IServer</c> (Kestrel) so that query-string credentials (<c>Auth:QueryToken</c>) leave
    /// the URL before the host logs the request line. Without it, tokens are still taken out of the URL Relay
    /// forwards, but the host's own request log (and any middleware before Relay's) sees them: query tokens are then
    /// refused at start-up.
    /// </summary>
    QueryTokenRedactingServer = 2,

    /// <summary>Both (the default of <c>AddRelay</c>).</summary>
    All = CorsPolicyProvider | QueryTokenRedactingServer,
}

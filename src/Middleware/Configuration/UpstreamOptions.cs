namespace Relay.Middleware.Configuration;

/// <summary>The default upstream of the default route.</summary>
public sealed class UpstreamOptions
{
    /// <summary>
    /// The base URL of the OpenAI-compatible upstream (for example <c>https://api.openai.com</c>): the default
    /// route <c>/v1/{**rest}</c> forwards to it, unless YARP routes are configured (the <c>ReverseProxy</c>
    /// section), which then take every request (a start-up warning says so). Empty in the Relay host: Relay runs in
    /// front of its built-in simulated upstream.
    /// </summary>
    public string? BaseUrl { get; set; }

    /// <summary>
    /// A PEM file of CA certificates trusted for upstream TLS besides the system's roots (a corporate TLS-inspecting
    /// proxy's private CA); a cluster's metadata <c>Relay.CaBundlePath</c> overrides it. Empty: the system's roots only.
    /// </summary>
    public string? CaBundlePath { get; set; }
}

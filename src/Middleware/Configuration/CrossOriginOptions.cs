namespace Relay.Middleware.Configuration;

/// <summary>CORS for browser clients on other origins.</summary>
public sealed class CrossOriginOptions
{
    /// <summary>Origins allowed to call the route (for example <c>https://app.example.com</c>; <c>*</c> for any). Empty: CORS off.</summary>
    public string[] AllowedOrigins { get; set; } = [];

    /// <summary>How long browsers may cache a preflight answer. Default 600 s.</summary>
    public double PreflightMaxAgeSeconds { get; set; } = 600;

    /// <summary>
    /// Let the upstream own CORS on the route: its <c>Access-Control-*</c> response headers pass to the client and
    /// preflights are forwarded to it. Default off: Relay strips the upstream's CORS headers and answers preflights
    /// itself. Cannot be combined with <see cref="AllowedOrigins"/> in one place; a route that sets it ignores the default
    /// allowed origins.
    /// </summary>
    public bool PassUpstreamHeaders { get; set; }
}

using Microsoft.Extensions.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Configuration;

/// <summary>
/// Relay's settings in force for one YARP route: the <see cref="RelayOptions"/> defaults, overridden by
/// the route's metadata entries named <c>Relay.</c> and the configuration path below the <c>Relay</c> section,
/// with dots (<c>"Relay.Cadence.MaxTokens": "4"</c>, <c>"Relay.Timeouts.IdleSeconds": "120"</c>): a colon in a
/// key would be read as a configuration section separator and never reach YARP's metadata.
/// </summary>
internal sealed record RouteSettings
{
    /// <summary>Flush cadence.</summary>
    public required CadenceOptions Cadence { get; init; }

    /// <summary>Timeouts.</summary>
    public required TimeoutOptions Timeouts { get; init; }

    /// <summary>Request limits.</summary>
    public required RequestLimitsOptions Limits { get; init; }

    /// <summary>Authentication.</summary>
    public required AuthOptions Auth { get; init; }

    /// <summary>SSE heartbeats.</summary>
    public required HeartbeatOptions Heartbeat { get; init; }

    /// <summary>CORS.</summary>
    public required CrossOriginOptions Cors { get; init; }

    // Resilience and compression.

    /// <summary>Retries, failover and circuit breakers.</summary>
    public Resilience.ResilienceOptions Resilience { get; init; } = new();

    /// <summary>Response compression.</summary>
    public Compression.CompressionOptions Compression { get; init; } = new();

    /// <summary>Streamed structured output.</summary>
    public StructuredOutput.StructuredOutputOptions StructuredOutput { get; init; } = new();
    /// <summary>Resumable streams.</summary>
    public Resume.ResumeOptions Resume { get; init; } = new();

    /// <summary>The YARP route id, or null outside a route.</summary>
    public string? RouteId { get; init; }

    /// <summary>Builds the settings of <paramref name="route"/> from the defaults and its metadata.</summary>
    public static RouteSettings Resolve(RelayOptions defaults, RouteConfig? route)
    {
        var metadata = route?.Metadata?
            .Where(static kv => kv.Key.StartsWith(MetadataPrefix, StringComparison.OrdinalIgnoreCase))
            .Select(static kv => KeyValuePair.Create(kv.Key[MetadataPrefix.Length..].Replace('.', ':'), kv.Value))
            .ToList();
        if (metadata is null || metadata.Count == 0)
        {
            return new RouteSettings
            {
                Cadence = defaults.Cadence,
                Timeouts = defaults.Timeouts,
                Limits = defaults.Limits,
                Auth = defaults.Auth,
                Heartbeat = defaults.Heartbeat,
                Cors = defaults.Cors,
                Resilience = defaults.Resilience,
                Compression = defaults.Compression,
                StructuredOutput = defaults.StructuredOutput,
                Resume = defaults.Resume,
                RouteId = route?.RouteId,
            };
        }

        // Bind the route's metadata over a copy of the defaults, with the same binder and the same
        // unknown-key strictness as the Relay section itself: a typo in route metadata fails loudly.
        var overlay = new ConfigurationBuilder()
            .AddInMemoryCollection(metadata.Select(static kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)))
            .Build();
        var cadence = Copy(defaults.Cadence, overlay.GetSection("Cadence"));
        var timeouts = Copy(defaults.Timeouts, overlay.GetSection("Timeouts"));
        var limits = Copy(defaults.Limits, overlay.GetSection("Limits"));
        return new RouteSettings
        {
            Cadence = cadence,
            Timeouts = timeouts,
            Limits = limits,
            Auth = Copy(defaults.Auth, overlay.GetSection("Auth")),
            Heartbeat = Copy(defaults.Heartbeat, overlay.GetSection("Heartbeat")),
            Cors = Copy(defaults.Cors, overlay.GetSection("Cors")),
            Resilience = Copy(defaults.Resilience, overlay.GetSection("Resilience")),
            Compression = Copy(defaults.Compression, overlay.GetSection("Compression")),
            StructuredOutput = Copy(defaults.StructuredOutput, overlay.GetSection("StructuredOutput")),
            Resume = Copy(defaults.Resume, overlay.GetSection("Resume")),
            RouteId = route!.RouteId,
        };
    }

    private static T Copy<T>(T defaults, IConfigurationSection overrides)
        where T : class, new()
    {
        var copy = new T();
        foreach (var property in typeof(T).GetProperties())
        {
            // A list the route sets (Relay.Cors.AllowedOrigins.0, ...) replaces the default list: the binder would
            // append to it.
            var replaced = property.PropertyType.IsArray && overrides.GetSection(property.Name).Exists();
            property.SetValue(copy, replaced ? Array.CreateInstance(property.PropertyType.GetElementType()!, 0) : property.GetValue(defaults));
        }

        overrides.Bind(copy, static o => o.ErrorOnUnknownConfiguration = false);
        return copy;
    }

    /// <summary>The prefix of the route metadata keys Relay reads.</summary>
    public const string MetadataPrefix = "Relay.";
}

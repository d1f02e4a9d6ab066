using Microsoft.Extensions.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Configuration;

/// <summary>
/// Relay's settings in force for one YARP route: the <see cref="RelayOptions"/> defaults, overridden by
/// the route's metadata entries named <c>Relay.</c> and the configuration path below the <c>Relay</c> section,
/// with dots (<c>"Relay.Cadence.MaxTokens": "4"</c>, <c>"Relay.Timeouts.IdleSeconds": "120"</c>): a colon in a
/// key would be read as a configuration section separator and never reach YARP's metadata.
/// </summary>
public sealed record RouteSettings
{
    /// <summary>Flush cadence.</summary>
    public required CadenceOptions Cadence { get; init; }

    /// <summary>Timeouts.</summary>
    public required TimeoutOptions Timeouts { get; init; }

    /// <summary>Request limits.</summary>
    public required RequestLimitsOptions Limits { get; init; }

    /// <summary>Builds the settings of <paramref name="route"/> from the defaults and its metadata.</summary>
    public static RouteSettings Resolve(RelayOptions defaults, RouteConfig? route)
    {
        var metadata = route?.Metadata?
            .Where(static kv => kv.Key.StartsWith(MetadataPrefix, StringComparison.OrdinalIgnoreCase))
            .Select(static kv => KeyValuePair.Create(kv.Key[MetadataPrefix.Length..].Replace('.', ':'), kv.Value))
            .ToList();
        if (metadata is null || metadata.Count == 0)
        {
            return new RouteSettings { Cadence = defaults.Cadence, Timeouts = defaults.Timeouts, Limits = defaults.Limits };
        }

        // Bind the route's metadata over a copy of the defaults, with the same binder and the same
        // unknown-key strictness as the Relay section itself: a typo in route metadata fails loudly.
        var overlay = new ConfigurationBuilder()
            .AddInMemoryCollection(metadata.Select(static kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)))
            .Build();
        var cadence = Copy(defaults.Cadence, overlay.GetSection("Cadence"));
        var timeouts = Copy(defaults.Timeouts, overlay.GetSection("Timeouts"));
        var limits = Copy(defaults.Limits, overlay.GetSection("Limits"));
        return new RouteSettings { Cadence = cadence, Timeouts = timeouts, Limits = limits };
    }

    private static T Copy<T>(T defaults, IConfigurationSection overrides)
        where T : class, new()
    {
        var copy = new T();
        foreach (var property in typeof(T).GetProperties())
        {
            property.SetValue(copy, property.GetValue(defaults));
        }

        overrides.Bind(copy, static o => o.ErrorOnUnknownConfiguration = false);
        return copy;
    }

    /// <summary>The prefix of the route metadata keys Relay reads.</summary>
    public const string MetadataPrefix = "Relay.";
}

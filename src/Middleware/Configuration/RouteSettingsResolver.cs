using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Configuration;

/// <summary>
/// Resolves <see cref="RouteSettings"/> once per route configuration instance (YARP replaces the instance
/// when configuration reloads, so the cache never serves stale settings).
/// </summary>
internal sealed class RouteSettingsResolver
{
    private readonly ConditionalWeakTable<RouteConfig, RouteSettings> _cache = new();
    private readonly IOptionsMonitor<RelayOptions> _options;
    private RouteSettings? _noRoute;

    /// <summary>Creates the resolver.</summary>
    public RouteSettingsResolver(IOptionsMonitor<RelayOptions> options)
    {
        _options = options;
        _options.OnChange(_ => _noRoute = null);
    }

    /// <summary>The settings in force for <paramref name="route"/>.</summary>
    public RouteSettings Get(RouteConfig? route)
    {
        if (route is null)
        {
            return _noRoute ??= RouteSettings.Resolve(_options.CurrentValue, null);
        }

        // Looked up first: the factory captures this, so passing it allocates a delegate on every call (several per request).
        return _cache.TryGetValue(route, out var settings) ? settings : _cache.GetValue(route, r => RouteSettings.Resolve(_options.CurrentValue, r));
    }
}

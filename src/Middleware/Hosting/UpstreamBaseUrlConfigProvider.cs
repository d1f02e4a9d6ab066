using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Relay.Middleware.Hosting;

/// <summary>
/// <c>Relay:Upstream:BaseUrl</c> as a YARP configuration source: the default route <c>/v1/{**rest}</c> to that
/// upstream, when no other source (the <c>ReverseProxy</c> section) configures routes. Whenever the two disagree it
/// says so at start-up instead of answering every request with 404 <c>unknown_route</c>.
/// </summary>
internal sealed partial class UpstreamBaseUrlConfigProvider(IOptions<RelayOptions> options, IServiceProvider services, ILogger<UpstreamBaseUrlConfigProvider> logger)
    : IProxyConfigProvider
{
    /// <summary>The id of the default route and of its cluster.</summary>
    public const string DefaultId = "default";

    private InMemoryConfigProvider? _config;

    public IProxyConfig GetConfig() => (_config ??= Build()).GetConfig();

    /// <summary>Replaces the routes and clusters (tests change the default route while Relay runs).</summary>
    internal void Update(IReadOnlyList<RouteConfig> routes, IReadOnlyList<ClusterConfig> clusters)
        => (_config ??= Build()).Update(routes, clusters);

    private InMemoryConfigProvider Build()
    {
        var baseUrl = options.Value.Upstream.BaseUrl;
        var routedElsewhere = services.GetServices<IProxyConfigProvider>()
            .Any(p => !ReferenceEquals(p, this) && p.GetConfig().Routes.Count > 0);
        if (routedElsewhere || string.IsNullOrWhiteSpace(baseUrl))
        {
            if (routedElsewhere && !string.IsNullOrWhiteSpace(baseUrl))
            {
                Log.BaseUrlUnused(logger);
            }
            else if (!routedElsewhere)
            {
                Log.NoRoutes(logger);
            }

            return new InMemoryConfigProvider([], []);
        }

        var (routes, clusters) = DefaultRoute(baseUrl);
        return new InMemoryConfigProvider(routes, clusters);
    }

    /// <summary>
    /// The default route: every <c>/v1/</c> path to the upstream. A base URL ending in <c>/v1</c> (the form
    /// OpenAI SDKs use) is accepted: the <c>/v1</c> is not repeated.
    /// </summary>
    internal static (RouteConfig[] Routes, ClusterConfig[] Clusters) DefaultRoute(string baseUrl)
    {
        var address = baseUrl.TrimEnd('/');
        if (address.EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            address = address[..^3];
        }

        var route = new RouteConfig { RouteId = DefaultId, ClusterId = DefaultId, Match = new RouteMatch { Path = "/v1/{**rest}" } };
        var cluster = new ClusterConfig
        {
            ClusterId = DefaultId,
            Destinations = new Dictionary<string, DestinationConfig> { ["upstream"] = new() { Address = address + "/" } },
        };
        return ([route], [cluster]);
    }

    private static partial class Log
    {
        [LoggerMessage(600, LogLevel.Warning, "Relay:Upstream:BaseUrl is not used: YARP routes are configured (the ReverseProxy section), and they take every request. Add a route to that upstream there, or remove the setting.", EventName = "UpstreamBaseUrlUnused")]
        public static partial void BaseUrlUnused(ILogger logger);

        [LoggerMessage(601, LogLevel.Warning, "No route is configured: every request gets 404 unknown_route. Set Relay:Upstream:BaseUrl, or configure YARP routes (the ReverseProxy section, with AddReverseProxy().LoadFromConfig(...)).", EventName = "NoRoutes")]
        public static partial void NoRoutes(ILogger logger);
    }
}

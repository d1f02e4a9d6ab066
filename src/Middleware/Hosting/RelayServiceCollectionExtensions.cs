using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Relay.Middleware.Accounting;
using Relay.Middleware.Auth;
using Relay.Middleware.Cancellation;
using Relay.Middleware.Configuration;
using Relay.Middleware.Cors;
using Relay.Middleware.Hosting;
using Relay.Middleware.Streaming;
using Relay.Middleware.WebSockets;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Relay's services.</summary>
public static class RelayServiceCollectionExtensions
{
    /// <summary>
    /// Adds Relay's services, with <see cref="RelayOptions"/> bound from <paramref name="relaySection"/> (strictly:
    /// an unknown key fails at start-up) and validated at start-up.
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, IConfiguration relaySection)
    {
        services.AddOptions<RelayOptions>()
            .Bind(relaySection, static o => o.ErrorOnUnknownConfiguration = true)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RelayOptions>, RelayOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<RelayMetrics>();
        services.TryAddSingleton<RouteSettingsResolver>();
        services.TryAddSingleton<SseStreamRelay>();
        services.TryAddSingleton<StreamAccountingRecorder>();
        services.TryAddSingleton<SseResponseTransform>();
        services.TryAddSingleton<ActiveStreams>();
        services.TryAddSingleton<WebSocketBridge>();
        services.AddHostedService(static sp => sp.GetRequiredService<ActiveStreams>());
        services.TryAddSingleton<RelayAuthenticator>();
        services.TryAddSingleton<StreamTicketSigner>();
        services.TryAddSingleton<StreamTicketIssuer>();
        Relay.Middleware.State.RelayStateServiceCollectionExtensions.AddRelayState(services); // Issue 15: the ticket store, in memory or in Redis.
        services.AddCors();
        services.Replace(ServiceDescriptor.Transient<ICorsPolicyProvider, RelayCorsPolicyProvider>());
        RedactQueryTokensInServer(services);
        return services;
    }

    /// <summary>
    /// Wraps the registered server (Kestrel) so that query-string credentials leave the URL before the host logs
    /// the request line (see <see cref="QueryTokenRedactingServer"/>). A host that registers its server later
    /// still gets the tokens removed from the forwarded URL by the authenticator, but not from the host's own log.
    /// </summary>
    private static void RedactQueryTokensInServer(IServiceCollection services)
    {
        var index = -1;
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ServiceType == typeof(IServer) && !services[i].IsKeyedService)
            {
                index = i;
                break;
            }
        }

        if (index < 0 || services[index].ImplementationType == typeof(QueryTokenRedactingServer))
        {
            return;
        }

        var inner = services[index];
        services[index] = ServiceDescriptor.Singleton<IServer>(sp => new QueryTokenRedactingServer(
            (IServer)(inner.ImplementationInstance ?? inner.ImplementationFactory?.Invoke(sp) ?? ActivatorUtilities.CreateInstance(sp, inner.ImplementationType!)),
            sp.GetRequiredService<IOptionsMonitor<RelayOptions>>()));
    }

    /// <summary>
    /// Adds Relay's YARP transforms (SSE relaying on every route, removal of Relay-only headers) and its cluster
    /// defaults (YARP's activity timeout is left to Relay's own timeouts; request headers are sent as UTF-8).
    /// </summary>
    public static IReverseProxyBuilder AddRelayTransforms(this IReverseProxyBuilder builder)
    {
        // Issue 14: retries, failover and circuit breakers (first: its response transform runs before the SSE transform).
        Relay.Middleware.Resilience.RelayResilienceExtensions.AddRelayResilience(builder);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, RelayTransformProvider>());
        builder.AddConfigFilter<RelayClusterConfigFilter>();
        return builder;
    }
}

using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
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
using Relay.Middleware.Telemetry;
using Relay.Middleware.WebSockets;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Relay's services.</summary>
public static class RelayServiceCollectionExtensions
{
    /// <summary>
    /// Adds Relay's services, with <see cref="RelayOptions"/> bound from <paramref name="relaySection"/> (the
    /// <c>Relay</c> section; strictly: an unknown key fails at start-up, naming the nearest valid key) and validated at start-up. Every setting of
    /// the section works as in the Relay host: Kestrel's response buffer, the host's shutdown timeout, OTLP export.
    /// Replaces the app's <c>ICorsPolicyProvider</c> and wraps its <c>IServer</c> (see
    /// <see cref="RelayHostIntegration"/>; the overload that takes one keeps either).
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, IConfiguration relaySection)
        => services.AddRelay(relaySection, RelayHostIntegration.All);

    /// <summary>
    /// Adds Relay's services as <see cref="AddRelay(IServiceCollection, IConfiguration)"/> does, replacing only the
    /// host services named in <paramref name="integration"/>.
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, IConfiguration relaySection, RelayHostIntegration integration)
    {
        ArgumentNullException.ThrowIfNull(relaySection);
        // Unknown keys are refused by RelaySectionKeysValidator, with the nearest valid key, rather than by the binder.
        services.AddOptions<RelayOptions>().Bind(relaySection).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RelayOptions>>(sp => new RelaySectionKeysValidator(relaySection, sp.GetService<IConfiguration>()));
        var telemetry = relaySection.GetSection("Telemetry").Get<TelemetryOptions>() ?? new TelemetryOptions();
        return services.AddRelayCore(telemetry, integration);
    }

    /// <summary>
    /// Adds Relay's services, with <see cref="RelayOptions"/> set in code by <paramref name="configure"/> and
    /// validated at start-up; otherwise as <see cref="AddRelay(IServiceCollection, IConfiguration)"/>.
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, Action<RelayOptions> configure)
        => services.AddRelay(configure, RelayHostIntegration.All);

    /// <summary>
    /// Adds Relay's services as <see cref="AddRelay(IServiceCollection, Action{RelayOptions})"/> does, replacing only the
    /// host services named in <paramref name="integration"/>.
    /// </summary>
    public static IServiceCollection AddRelay(this IServiceCollection services, Action<RelayOptions> configure, RelayHostIntegration integration)
    {
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<RelayOptions>().Configure(configure).ValidateOnStart();

        // Telemetry export is decided while services are added (OpenTelemetry registers its own then).
        var probe = new RelayOptions();
        configure(probe);
        return services.AddRelayCore(probe.Telemetry, integration);
    }

    private static IServiceCollection AddRelayCore(this IServiceCollection services, TelemetryOptions telemetry, RelayHostIntegration integration)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RelayOptions>, RelayOptionsValidator>());
        services.AddSingleton<IValidateOptions<RelayOptions>>(new HostIntegrationValidator(integration));
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
        Relay.Middleware.State.RelayStateServiceCollectionExtensions.AddRelayState(services); // The ticket store, in memory or in Redis.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<KestrelServerOptions>, RelayKestrelOptionsSetup>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<HostOptions>, RelayHostOptionsSetup>());
        RelayTelemetry.AddExport(services, telemetry);
        services.AddCors();
        if (integration.HasFlag(RelayHostIntegration.CorsPolicyProvider))
        {
            services.Replace(ServiceDescriptor.Transient<ICorsPolicyProvider, RelayCorsPolicyProvider>());
        }

        if (integration.HasFlag(RelayHostIntegration.QueryTokenRedactingServer))
        {
            RedactQueryTokensInServer(services);
        }

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
    /// Adds Relay's YARP transforms (SSE relaying on every route, removal of Relay-only headers), its cluster
    /// defaults (YARP's activity timeout is left to Relay's own timeouts; request headers are sent as UTF-8),
    /// retries and circuit breakers, and <c>Relay:Upstream:BaseUrl</c> as a configuration source: the default route
    /// <c>/v1/{**rest}</c> to that upstream when no other source configures routes.
    /// </summary>
    public static IReverseProxyBuilder AddRelayTransforms(this IReverseProxyBuilder builder)
    {
        // Retries, failover and circuit breakers first: its response transform runs before the SSE transform.
        Relay.Middleware.Resilience.RelayResilienceExtensions.AddRelayResilience(builder);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ITransformProvider, RelayTransformProvider>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IProxyConfigProvider, UpstreamBaseUrlConfigProvider>());
        builder.AddConfigFilter<RelayClusterConfigFilter>();
        // Egress through forward proxies, a corporate CA bundle, identity-encoded upstream streams.
        Relay.Middleware.Egress.RelayEgressExtensions.AddRelayEgress(builder);
        return builder;
    }
}

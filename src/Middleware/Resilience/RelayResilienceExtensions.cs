using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;
using Yarp.ReverseProxy.Health;

namespace Relay.Middleware.Resilience;

/// <summary>Registers retries before the first byte, failover and per-destination circuit breakers (and route compression).</summary>
internal static class RelayResilienceExtensions
{
    /// <summary>
    /// Adds the services; called from <c>AddRelayTransforms</c> before Relay's own transform provider, so that
    /// <see cref="RetryableResponseTransform"/> runs before the SSE transform.
    /// </summary>
    public static IReverseProxyBuilder AddRelayResilience(this IReverseProxyBuilder builder)
    {
        var services = builder.Services;
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RelayOptions>, ResilienceOptionsValidator>());
        services.TryAddSingleton<ResilienceMetrics>();
        services.TryAddSingleton<RetryableResponseTransform>();
        services.TryAddSingleton<DestinationCircuitBreaker>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPassiveHealthCheckPolicy, DestinationCircuitBreaker>(static sp => sp.GetRequiredService<DestinationCircuitBreaker>()));
        services.TryAddSingleton<DestinationCredentialTransform>();
        builder.AddTransforms(static context =>
        {
            context.ResponseTransforms.Add(context.Services.GetRequiredService<RetryableResponseTransform>());
            context.RequestTransforms.Add(context.Services.GetRequiredService<DestinationCredentialTransform>());
        });
        builder.AddConfigFilter<ResilienceClusterConfigFilter>();
        Compression.RelayCompressionExtensions.AddRelayCompression(services);
        return builder;
    }
}

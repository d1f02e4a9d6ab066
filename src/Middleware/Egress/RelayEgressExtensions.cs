using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.Middleware.Egress;

/// <summary>Registers Relay's egress: forward proxies, the CA bundle, identity-encoded upstream streams.</summary>
internal static class RelayEgressExtensions
{
    /// <summary>
    /// Replaces YARP's default forwarder client factory with <see cref="RelayForwarderHttpClientFactory"/>; a host
    /// that registered its own factory keeps it (and with it, its own proxy and trust settings).
    /// </summary>
    public static IReverseProxyBuilder AddRelayEgress(this IReverseProxyBuilder builder)
    {
        var services = builder.Services;
        var registered = services.LastOrDefault(static d => d.ServiceType == typeof(IForwarderHttpClientFactory) && !d.IsKeyedService);
        if (registered is null || registered.ImplementationType == typeof(ForwarderHttpClientFactory))
        {
            services.Replace(ServiceDescriptor.Singleton<IForwarderHttpClientFactory, RelayForwarderHttpClientFactory>());
        }

        builder.AddTransforms(static context => context.RequestTransforms.Add(StreamAcceptEncodingTransform.Instance));
        return builder;
    }
}

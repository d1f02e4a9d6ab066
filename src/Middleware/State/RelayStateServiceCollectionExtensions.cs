using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Relay.Middleware.Auth;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.State;

/// <summary>Registers the stores of state that instances may share: in memory, or in Redis with <c>Relay:State:Redis</c>.</summary>
internal static class RelayStateServiceCollectionExtensions
{
    public static IServiceCollection AddRelayState(this IServiceCollection services)
    {
        services.TryAddSingleton<InMemoryTicketStore>();
        services.TryAddSingleton<RedisState>();
        services.TryAddSingleton<TicketCipher>();
        services.TryAddSingleton<RedisTicketStore>();
        // Decided when the store is first needed, from the bound options: a host may add configuration after AddRelay.
        services.TryAddSingleton<ITicketStore>(static sp => IsRedis(sp)
            ? sp.GetRequiredService<RedisTicketStore>()
            : sp.GetRequiredService<InMemoryTicketStore>());
        services.TryAddSingleton<Resume.ResumableStreams>();
        services.TryAddSingleton<Resume.LiveEventFeed>();
        services.AddHostedService<StateStoreConnector>();
        return services;
    }

    public static bool IsRedis(IServiceProvider services)
        => !string.IsNullOrWhiteSpace(services.GetRequiredService<IOptions<RelayOptions>>().Value.State.Redis);
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Relay.Middleware.State;

/// <summary>Connects to Redis while the host starts, so the first request finds the connection made (when Redis is up).</summary>
internal sealed class StateStoreConnector(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
        => RelayStateServiceCollectionExtensions.IsRedis(services)
            ? services.GetRequiredService<RedisState>().FirstAttempt.WaitAsync(cancellationToken)
            : Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Relay.Middleware.State;

/// <summary>Connects to Redis while the host starts, so the first request finds the connection made (when Redis is up).</summary>
internal sealed class StateStoreConnector(IServiceProvider services) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (RelayStateServiceCollectionExtensions.IsRedis(services))
        {
            await services.GetRequiredService<RedisState>().FirstAttempt.WaitAsync(cancellationToken);
            await services.GetRequiredService<Resume.ResumableStreams>().SubscribeAsync();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

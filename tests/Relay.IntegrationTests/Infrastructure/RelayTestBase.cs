using Microsoft.Extensions.DependencyInjection;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A test class with its own Relay (in-process, real socket) in front of the shared simulated upstream. A class that
/// needs extra services (a usage sink, a fake clock) overrides <see cref="ConfigureServices"/> instead of starting its
/// own Relay.
/// </summary>
public abstract class RelayTestBase(MockUpstreamFixture upstream, IDictionary<string, string?>? settings = null) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    protected MockUpstreamFixture Upstream { get; } = upstream;

    protected InProcessRelay Relay { get; private set; } = null!;

    protected HttpClient Client { get; } = CreateClient();

    public async Task InitializeAsync() => Relay = await InProcessRelay.StartAsync(Upstream.Url, settings, services: ConfigureServices);

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Relay.DisposeAsync();
    }

    /// <summary>Registers services of the test class before Relay's host is built.</summary>
    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    /// <summary>A client that does not drain a response it stopped reading (tests cancel streams mid-way).</summary>
    private static HttpClient CreateClient() => new(new SocketsHttpHandler { MaxResponseDrainSize = 0 });
}

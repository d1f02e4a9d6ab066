namespace Relay.IntegrationTests.Infrastructure;

/// <summary>A test class with its own Relay (in-process, real socket) in front of the shared simulated upstream.</summary>
public abstract class RelayTestBase(MockUpstreamFixture upstream, IDictionary<string, string?>? settings = null) : IAsyncLifetime
{
    protected MockUpstreamFixture Upstream { get; } = upstream;

    protected InProcessRelay Relay { get; private set; } = null!;

    protected HttpClient Client { get; } = new();

    public async Task InitializeAsync() => Relay = await InProcessRelay.StartAsync(Upstream.Url, settings);

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await Relay.DisposeAsync();
    }
}

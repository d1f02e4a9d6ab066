using System.Collections.Concurrent;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.State;

/// <summary>
/// One redis-server and two Relay instances on it (A and B), shared by the tests of one class (an
/// <c>IClassFixture</c>): starting them for every test cost about a second each. Started by the class's first test
/// (a fixture cannot take the upstream fixture in its constructor), stopped after its last one. The tests of a class
/// run one at a time, so each may change the instances' state; a test that stops Redis uses instances of its own.
/// </summary>
public sealed class SharedRelays : IAsyncLifetime
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public RedisProcess Redis { get; private set; } = null!;

    public InProcessRelay A { get; private set; } = null!;

    public InProcessRelay B { get; private set; } = null!;

    /// <summary>The usage records of the test that runs now, where a class's sink puts them (set by each test).</summary>
    public ConcurrentQueue<StreamUsageRecord> CurrentUsage { get; set; } = new();

    /// <summary>Starts Redis and the instances the first time (<paramref name="start"/> starts A and B on Redis); later calls return.</summary>
    public async Task StartOnceAsync(Func<RedisProcess, Task<(InProcessRelay A, InProcessRelay B)>> start)
    {
        await _gate.WaitAsync();
        try
        {
            if (A is not null)
            {
                return;
            }

            Redis = await RedisProcess.StartAsync();
            (A, B) = await start(Redis);
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (A is not null)
        {
            await A.DisposeAsync();
            await B.DisposeAsync();
        }

        if (Redis is not null)
        {
            await Redis.DisposeAsync();
        }

        _gate.Dispose();
    }
}

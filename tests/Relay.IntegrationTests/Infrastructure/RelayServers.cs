using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// The simulated upstream on a real loopback socket, one for the whole test assembly: each test class gets it through
/// <c>IClassFixture&lt;MockUpstreamFixture&gt;</c> (so classes run in parallel, each its own collection), and the server
/// starts once, on the first class that asks, and lives as long as the test process.
/// </summary>
public sealed class MockUpstreamFixture : IAsyncLifetime
{
    private static readonly Lazy<Task<string>> s_shared = new(StartSharedAsync);

    public string Url { get; private set; } = "";

    public HttpClient Client { get; } = new();

    public async Task InitializeAsync() => Url = await s_shared.Value;

    private static async Task<string> StartSharedAsync()
    {
        // Never disposed: classes start and end in any order, and the process's exit closes the socket.
        var app = await MockInference.MockInferenceServer.StartAsync("http://127.0.0.1:0");
        var url = Addresses(app).First();
        using var client = new HttpClient();
        await WarmUpAsync(client, url);
        return url;
    }

    /// <summary>
    /// One request before the tests: the first one loads the tokenizer (about a second), which would otherwise
    /// count against the first test's time-to-first-token and pacing.
    /// </summary>
    public static async Task WarmUpAsync(HttpClient client, string url)
    {
        using var request = SseRead.ChatRequest(url, stream: false, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "3" });
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
    }

    public Task DisposeAsync()
    {
        Client.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>The simulated upstream's record of one request.</summary>
    public async Task<System.Text.Json.JsonElement> RecordAsync(string requestId)
        => System.Text.Json.JsonDocument.Parse(await Client.GetStringAsync($"{Url}/mock/requests/{requestId}")).RootElement;

    /// <summary>Polls the record of one request until <paramref name="until"/> holds (<see cref="MockRecords.WaitAsync"/>).</summary>
    public Task<System.Text.Json.JsonElement> WaitForRecordAsync(string requestId, Func<System.Text.Json.JsonElement, bool> until, TimeSpan? timeout = null, TimeSpan? poll = null)
        => MockRecords.WaitAsync(Client, Url, requestId, until, timeout, poll);

    /// <summary>Whether the upstream saw its client (Relay) go away.</summary>
    public static bool IsAborted(System.Text.Json.JsonElement record)
        => record.TryGetProperty("aborted_us", out var a) && a.ValueKind == System.Text.Json.JsonValueKind.Number;

    /// <summary>Whether the upstream finished handling the request (any final status).</summary>
    public static bool IsFinished(System.Text.Json.JsonElement record)
        => record.GetProperty("status").GetString() != "in_progress";

    internal static IEnumerable<string> Addresses(WebApplication app)
        => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
}

/// <summary>Tests that load the machine heavily: run alone, after the parallel collections.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class IsolatedCollection
{
    public const string Name = "isolated";
}

/// <summary>Relay, in this process, on a real loopback Kestrel socket (port 0), with its logs captured.</summary>
public sealed class InProcessRelay : IAsyncDisposable
{
    private InProcessRelay(WebApplication app, string url, string? h2cUrl)
    {
        App = app;
        Url = url;
        H2cUrl = h2cUrl;
    }

    public WebApplication App { get; }

    public string Url { get; }

    public string? H2cUrl { get; }

    public FakeLogCollector Logs => App.Services.GetFakeLogCollector();

    /// <summary>
    /// Waits for the first captured log record (past or future) that matches: the condition itself, not a time. Fails
    /// with every record captured so far when none came within <paramref name="timeout"/> (default
    /// <see cref="Deadline.Default"/>, which only a real failure reaches).
    /// </summary>
    public async Task<FakeLogRecord> WaitForLogAsync(Func<FakeLogRecord, bool> match, TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? Deadline.Default);
        try
        {
            await foreach (var record in Logs.GetLogsAsync(deadline.Token))
            {
                if (match(record))
                {
                    return record;
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
        }

        throw new TimeoutException("no such log record: " + string.Join(" | ", Logs.GetSnapshot().Select(static r => r.Id.Name + ": " + r.Message)));
    }

    /// <summary>
    /// Starts Relay. <paramref name="services"/> registers extra services before the host is built (e.g. an
    /// <c>IStreamUsageSink</c> that captures usage records).
    /// </summary>
    public static async Task<InProcessRelay> StartAsync(string upstreamUrl, IDictionary<string, string?>? settings = null, bool h2c = false, Action<IServiceCollection>? services = null)
    {
        var httpPort = h2c ? FreePort.Next() : 0;
        var h2cPort = h2c ? FreePort.Next() : 0;
        var args = new List<string>
        {
            "--urls", $"http://127.0.0.1:{httpPort}",
            "--Relay:Upstream:BaseUrl", upstreamUrl,
        };
        if (h2c)
        {
            args.AddRange(["--H2cUrls", $"http://127.0.0.1:{h2cPort}"]);
        }

        var app = await Relay.RelayApp.BuildAsync([.. args], builder =>
        {
            if (settings is not null)
            {
                builder.Configuration.AddInMemoryCollection(settings);
            }

            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddFakeLogging();
            services?.Invoke(builder.Services);
        });
        await app.StartAsync();
        var url = h2c ? $"http://127.0.0.1:{httpPort}" : MockUpstreamFixture.Addresses(app).First();
        return new InProcessRelay(app, url, h2c ? $"http://127.0.0.1:{h2cPort}" : null);
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

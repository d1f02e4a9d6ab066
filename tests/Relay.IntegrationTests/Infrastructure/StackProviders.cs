using System.Diagnostics;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// The whole stack, as it is deployed: simulated upstream, Relay, and nginx in front (docker-compose.yml's
/// topology), as local processes. The same topology as containers, built from the Dockerfiles: Containers/.
/// </summary>
public interface IStackProvider : IAsyncDisposable
{
    /// <summary>Why this provider cannot run here, or null.</summary>
    string? SkipReason { get; }

    /// <summary>Starts the stack; afterwards the URLs are set.</summary>
    Task StartAsync();

    /// <summary>nginx, in front of Relay.</summary>
    string EdgeUrl { get; }

    /// <summary>Relay itself.</summary>
    string RelayUrl { get; }

    /// <summary>The simulated upstream.</summary>
    string UpstreamUrl { get; }
}

/// <summary>The stack as local processes: <c>dotnet MockInference.dll</c>, <c>dotnet Relay.dll</c>, and nginx.</summary>
public sealed class ProcessStackProvider : IStackProvider
{
    private readonly List<Process> _processes = [];
    private NginxProcess? _nginx;

    public string? SkipReason => NginxProcess.Binary is null ? "nginx is not installed (apt-get install nginx); .ci/run installs it." : null;

    public string EdgeUrl => _nginx!.Url;

    public string RelayUrl { get; private set; } = "";

    public string UpstreamUrl { get; private set; } = "";

    public async Task StartAsync()
    {
        var upstreamPort = FreePort.Next();
        UpstreamUrl = $"http://127.0.0.1:{upstreamPort}";
        Start(BuiltDll("MockInference"), "--urls", UpstreamUrl);
        await WaitListeningAsync(upstreamPort);
        using (var client = new HttpClient())
        {
            await MockUpstreamFixture.WarmUpAsync(client, UpstreamUrl);
        }

        var relayPort = FreePort.Next();
        RelayUrl = $"http://127.0.0.1:{relayPort}";
        Start(BuiltDll("Relay"), "--urls", RelayUrl, "--Relay:Upstream:BaseUrl", UpstreamUrl);
        await WaitListeningAsync(relayPort);

        _nginx = await NginxProcess.StartAsync(RelayUrl);
    }

    private void Start(string dll, params string[] args) => _processes.Add(DotnetProcess.Start(dll, args));

    private static string BuiltDll(string project) => DotnetProcess.BuiltDll(project);

    private Task WaitListeningAsync(int port) => DotnetProcess.WaitListeningAsync(_processes[^1], port);

    public async ValueTask DisposeAsync()
    {
        if (_nginx is not null)
        {
            await _nginx.DisposeAsync();
        }

        foreach (var p in _processes)
        {
            await DotnetProcess.StopAsync(p);
        }
    }
}

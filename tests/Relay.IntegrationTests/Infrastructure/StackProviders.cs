using System.Diagnostics;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Networks;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// The whole stack, as it is deployed: simulated upstream, Relay, and nginx in front (docker-compose.yml's
/// topology). Two providers behind this one interface run the same test classes: local processes (default, what
/// CI uses) and containers (Testcontainers, with <c>RELAY_TEST_DOCKER=1</c> and a Docker engine).
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

/// <summary>The stack as containers built from the repository's Dockerfiles (docker-compose.yml's topology).</summary>
public sealed class ContainerStackProvider : IStackProvider
{
    private readonly List<IContainer> _containers = [];
    private INetwork? _network;
    private IContainer? _nginx;
    private IContainer? _relay;
    private IContainer? _upstream;

    public string? SkipReason { get; } = Environment.GetEnvironmentVariable("RELAY_TEST_DOCKER") != "1"
        ? "container provider: set RELAY_TEST_DOCKER=1 on a machine with a Docker engine (this one has none); the same tests ran on local processes."
        : !File.Exists("/var/run/docker.sock") && Environment.GetEnvironmentVariable("DOCKER_HOST") is null
            ? "container provider: no Docker engine is reachable (no /var/run/docker.sock, no DOCKER_HOST)."
            : null;

    public string EdgeUrl => Url(_nginx!, 8080);

    public string RelayUrl => Url(_relay!, 8080);

    public string UpstreamUrl => Url(_upstream!, 8080);

    public async Task StartAsync()
    {
        var repo = CommonDirectoryPath.GetSolutionDirectory().DirectoryPath;
        _network = new NetworkBuilder().Build();
        await _network.CreateAsync();
        var upstreamImage = new ImageFromDockerfileBuilder().WithDockerfileDirectory(repo).WithDockerfile("src/MockInference/Dockerfile").Build();
        var relayImage = new ImageFromDockerfileBuilder().WithDockerfileDirectory(repo).WithDockerfile("src/Relay/Dockerfile").Build();
        await upstreamImage.CreateAsync();
        await relayImage.CreateAsync();
        _upstream = Add(new ContainerBuilder(upstreamImage).WithNetwork(_network).WithNetworkAliases("mock").WithPortBinding(8080, true)
            .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPort(8080).ForPath("/v1/models"))).Build());
        _relay = Add(new ContainerBuilder(relayImage).WithNetwork(_network).WithNetworkAliases("relay").WithPortBinding(8080, true)
            .WithEnvironment("Relay__Upstream__BaseUrl", "http://mock:8080")
            .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPort(8080).ForPath("/v1/models"))).Build());
        _nginx = Add(new ContainerBuilder("nginx:stable").WithNetwork(_network).WithPortBinding(8080, true)
            .WithResourceMapping(new FileInfo(Path.Combine(repo, "config", "nginx", "relay-edge.conf")), "/etc/nginx/conf.d/")
            .WithWaitStrategy(Wait.ForUnixContainer().UntilInternalTcpPortIsAvailable(8080)).Build());
        foreach (var c in _containers)
        {
            await c.StartAsync();
        }
    }

    private IContainer Add(IContainer c)
    {
        _containers.Add(c);
        return c;
    }

    private static string Url(IContainer c, int port) => $"http://{c.Hostname}:{c.GetMappedPublicPort(port)}";

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _containers)
        {
            await c.DisposeAsync();
        }

        if (_network is not null)
        {
            await _network.DisposeAsync();
        }
    }
}

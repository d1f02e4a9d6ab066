using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using DotNet.Testcontainers.Networks;

namespace Relay.IntegrationTests.Containers;

/// <summary>
/// The deployed topology as containers, built from the project's Dockerfiles: client -> nginx edge -> Relay ->
/// MockInference, each in its own container on one Docker network (docker-compose.yml's topology). Images are
/// built once per run; the base images come from the build arguments .ci/docker.sh exports (RELAY_SDK_IMAGE,
/// RELAY_RUNTIME_IMAGE, RELAY_NGINX_IMAGE, RELAY_PUBLISHED), else the Dockerfiles' official defaults.
/// </summary>
public sealed class ContainerStackFixture : IAsyncLifetime
{
    private readonly List<IContainer> _containers = [];
    private INetwork? _network;
    private IContainer? _edge;
    private IContainer? _relay;
    private IContainer? _upstream;

    public string EdgeUrl => Url(_edge!);

    public string RelayUrl => Url(_relay!);

    public string UpstreamUrl => Url(_upstream!);

    public IFutureDockerImage? RelayImage { get; private set; }

    public IFutureDockerImage? EdgeImage { get; private set; }

    public INetwork Network => _network!;

    public async Task InitializeAsync()
    {
        if (DockerEngine.SkipReason is not null)
        {
            return;
        }

        await DockerEngine.PrepareAsync();
        _network = new NetworkBuilder().WithName($"relay-tests-{Guid.NewGuid():N}").WithLabel(DockerEngine.Label, "true").Build();
        await _network.CreateAsync();

        var upstreamImage = Image("src/MockInference/Dockerfile", "relay-tests/mock-inference");
        RelayImage = Image("src/Relay/Dockerfile", "relay-tests/relay");
        EdgeImage = Image("config/nginx/Dockerfile", "relay-tests/edge");
        foreach (var image in new[] { upstreamImage, RelayImage, EdgeImage })
        {
            await image.CreateAsync();
        }

        _upstream = await StartAsync(Container(upstreamImage, "mock"));
        _relay = await StartAsync(RelayContainer("relay"));
        _edge = await StartAsync(Container(EdgeImage, "edge"));
    }

    /// <summary>A Relay container on the stack's network, in front of the stack's MockInference, not started.</summary>
    public ContainerBuilder RelayContainer(string alias) => Container(RelayImage!, alias).WithEnvironment("Relay__Upstream__BaseUrl", "http://mock:8080");

    /// <summary>Starts a container; it is removed with the stack.</summary>
    public async Task<IContainer> StartAsync(ContainerBuilder builder)
    {
        var container = builder.Build();
        _containers.Add(container);
        await container.StartAsync();
        return container;
    }

    /// <summary>A container of <paramref name="image"/> on the stack's network as <paramref name="alias"/>, ready when its image's healthcheck passes.</summary>
    public ContainerBuilder Container(IImage image, string alias) => new ContainerBuilder(image)
        .WithNetwork(_network!)
        .WithNetworkAliases(alias)
        .WithPortBinding(8080, true)
        .WithLabel(DockerEngine.Label, "true")
        .WithWaitStrategy(Wait.ForUnixContainer().UntilContainerIsHealthy());

    /// <summary>The host URL of a container's port 8080.</summary>
    public static string Url(IContainer c) => $"http://{c.Hostname}:{c.GetMappedPublicPort(8080)}";

    private static IFutureDockerImage Image(string dockerfile, string name)
    {
        var builder = new ImageFromDockerfileBuilder()
            .WithDockerfileDirectory(CommonDirectoryPath.GetSolutionDirectory(), "")
            .WithDockerfile(dockerfile)
            .WithName($"{name}:local")
            .WithDeleteIfExists(false);
        foreach (var (arg, variable) in BuildArguments)
        {
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value)
            {
                builder = builder.WithBuildArgument(arg, value);
            }
        }

        return builder.Build();
    }

    /// <summary>The Dockerfiles' build arguments and the variables that set them (as in docker-compose.yml, which also has REDIS_IMAGE from RELAY_REDIS_IMAGE for its Redis).</summary>
    internal static readonly (string Arg, string Variable)[] BuildArguments =
    [
        ("SDK_IMAGE", "RELAY_SDK_IMAGE"), ("RUNTIME_IMAGE", "RELAY_RUNTIME_IMAGE"), ("NGINX_IMAGE", "RELAY_NGINX_IMAGE"), ("PUBLISHED", "RELAY_PUBLISHED"),
    ];

    public async Task DisposeAsync()
    {
        foreach (var c in _containers)
        {
            await c.DisposeAsync();
        }

        if (_network is not null)
        {
            await _network.DisposeAsync();
        }

        if (DockerEngine.SkipReason is null)
        {
            await DockerEngine.CleanUpAsync();
        }
    }
}

/// <summary>
/// Image builds load the machine for minutes: the container stack runs alone, after the parallel collections, so that
/// it neither skews the timing-sensitive tests (heartbeat spacing, cadence) nor races the compose stack's clean-up by label.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ContainerStackCollection : ICollectionFixture<ContainerStackFixture>
{
    public const string Name = "container stack";
}

/// <summary>The compose stack, alone for the same reasons as <see cref="ContainerStackCollection"/>.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ComposeStackCollection
{
    public const string Name = "compose stack";
}

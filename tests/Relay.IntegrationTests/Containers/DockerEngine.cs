using Docker.DotNet;
using Docker.DotNet.Models;
using DotNet.Testcontainers.Configurations;

namespace Relay.IntegrationTests.Containers;

/// <summary>
/// The Docker engine the container tests run on. They run with <c>RELAY_TEST_DOCKER=1</c> (.ci/run exports it after
/// it started an engine and built the local base images, .ci/docker.sh); then a missing engine fails them instead
/// of skipping them. Without it they skip, saying why.
/// </summary>
internal static class DockerEngine
{
    /// <summary>The label on every container and network these tests create: what the clean-up removes.</summary>
    public const string Label = "relay.tests";

    public static Uri Endpoint { get; } = new(Environment.GetEnvironmentVariable("DOCKER_HOST") ?? "unix:///var/run/docker.sock");

    public static string? SkipReason { get; } = Environment.GetEnvironmentVariable("RELAY_TEST_DOCKER") == "1"
        ? null
        : "container tests: set RELAY_TEST_DOCKER=1 with a Docker engine and the images' base images (.ci/run does both, see docs/operations.md, \"Docker\")"
            + (Endpoint.IsFile && !File.Exists(Endpoint.LocalPath) ? $"; there is no engine here ({Endpoint} does not exist)." : ".");

    private static readonly Lazy<Task<VersionResponse>> Prepared = new(ConnectAsync);

    /// <summary>
    /// Makes Testcontainers work with this engine and removes what an earlier run left behind. Call before any
    /// other Testcontainers use in the process: its settings are read once.
    /// </summary>
    public static Task<VersionResponse> PrepareAsync() => Prepared.Value;

    private static async Task<VersionResponse> ConnectAsync()
    {
        VersionResponse version;
        using (var client = NewClient())
        {
            try
            {
                version = await client.System.GetVersionAsync();
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException($"RELAY_TEST_DOCKER=1 but no Docker engine answers at {Endpoint} ({ex.Message}); .ci/run starts one (.ci/docker.sh).", ex);
            }
        }

        // Testcontainers 4.x asks for API 1.44 on every call (Docker Engine 29 removed older API versions) instead
        // of negotiating, and an older engine refuses it: Debian bookworm's docker.io 20.10 speaks 1.41. Its
        // supported override is DOCKER_API_VERSION (or docker.api.version in ~/.testcontainers.properties), read
        // once: set it to the engine's own version when that is older and nobody chose one.
        if (Environment.GetEnvironmentVariable("DOCKER_API_VERSION") is null
            && System.Version.TryParse(version.APIVersion, out var api) && api < new System.Version(1, 44))
        {
            Environment.SetEnvironmentVariable("DOCKER_API_VERSION", version.APIVersion);
        }

        // Ryuk (the reaper container) is an image from Docker Hub, which may not be reachable: clean up by label
        // instead, here at the start (a run that crashed) and when the fixtures are disposed.
        TestcontainersSettings.ResourceReaperEnabled = false;
        await CleanUpAsync();
        return version;
    }

    /// <summary>Removes every container and network with <see cref="Label"/>.</summary>
    public static async Task CleanUpAsync()
    {
        using var client = NewClient();
        var filter = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [Label] = true } };
        foreach (var c in await client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = filter }))
        {
            await client.Containers.RemoveContainerAsync(c.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }

        foreach (var n in await client.Networks.ListNetworksAsync(new NetworksListParameters { Filters = filter }))
        {
            await client.Networks.DeleteNetworkAsync(n.ID);
        }
    }

    public static DockerClient NewClient() => new DockerClientBuilder().WithEndpoint(Endpoint).Build();
}

using System.Diagnostics;
using Docker.DotNet.Models;
using DotNet.Testcontainers.Builders;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.Containers;

/// <summary>
/// Docker-compose.yml as a user runs it (<c>docker-compose up --build</c>), with the base images from
/// RELAY_* (.ci/docker.sh) and free host ports for the edge and Relay.
/// </summary>
[Collection(ComposeStackCollection.Name)]
public sealed class ComposeStackTests(ComposeStackTests.ComposeStack compose) : IClassFixture<ComposeStackTests.ComposeStack>
{
    private static readonly string[] Services = ["mock", "relay", "edge"];

    [SkippableFact]
    public async Task EveryService_HasAHealthcheck_AndBecomesHealthy()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        foreach (var service in Services)
        {
            var container = await compose.WaitHealthyAsync(service);
            Assert.NotEmpty(container.Config?.Healthcheck?.Test ?? []);
            Assert.Equal("healthy", container.State?.Health?.Status);
        }
    }

    [SkippableFact]
    public async Task DependsOn_StartsEachServiceOnlyOnceItsDependencyIsHealthy()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        foreach (var (dependency, dependent) in new[] { ("mock", "relay"), ("relay", "edge") })
        {
            // A healthcheck first runs one interval after its container started: a dependent that started
            // later than that waited for it (without the condition it starts within a second of its dependency).
            var first = await compose.WaitHealthyAsync(dependency);
            var then = await compose.WaitHealthyAsync(dependent);
            var earliestHealthy = Started(first) + (first.Config?.Healthcheck?.Interval ?? TimeSpan.Zero);
            Assert.True(Started(then) >= earliestHealthy, $"{dependent} started at {Started(then):O}, before {dependency} could be healthy ({earliestHealthy:O})");
        }
    }

    private static DateTimeOffset Started(ContainerInspectResponse c) => DateTimeOffset.Parse(c.State!.StartedAt, System.Globalization.CultureInfo.InvariantCulture);

    [SkippableFact]
    public async Task ThroughEdge_TokensArriveIncrementally()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await compose.WaitHealthyAsync("edge");
        await StackAssertions.StreamsIncrementallyAsync(compose.EdgeUrl);
    }

    [SkippableFact]
    public async Task ThroughEdge_WebSocketBridgeWorks()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await compose.WaitHealthyAsync("edge");
        await StackAssertions.BridgeWorksAsync(compose.EdgeUrl);
    }

    /// <summary>The compose project, up for the class, down (and cleaned up) after it.</summary>
    public sealed class ComposeStack : IAsyncLifetime
    {
        private const string Project = "relay-tests-compose";
        private readonly int _edgePort = FreePort.Next();
        private readonly int _relayPort = FreePort.Next();

        public string EdgeUrl => $"http://127.0.0.1:{_edgePort}";

        public async Task InitializeAsync()
        {
            if (DockerEngine.SkipReason is not null)
            {
                return;
            }

            await DockerEngine.PrepareAsync();
            await RunAsync(TimeSpan.FromMinutes(2), "down", "--remove-orphans", "--timeout", "5");
            await RunAsync(TimeSpan.FromMinutes(10), "up", "--build", "--detach");
        }

        /// <summary>The service's container once its healthcheck passed (a bounded poll of the engine's state).</summary>
        public async Task<ContainerInspectResponse> WaitHealthyAsync(string service)
        {
            var id = (await RunAsync(TimeSpan.FromSeconds(30), "ps", "-q", service)).Trim();
            Assert.False(string.IsNullOrEmpty(id), $"no container for the compose service {service}");
            using var docker = DockerEngine.NewClient();
            var clock = Stopwatch.StartNew();
            while (true)
            {
                var container = await docker.Containers.InspectContainerAsync(id);
                var status = container.State?.Health?.Status;
                if (status is "healthy" or null || clock.Elapsed > TimeSpan.FromSeconds(90))
                {
                    return container;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }

        public async Task DisposeAsync()
        {
            if (DockerEngine.SkipReason is null)
            {
                await RunAsync(TimeSpan.FromMinutes(2), "down", "--remove-orphans", "--timeout", "5");
            }
        }

        private async Task<string> RunAsync(TimeSpan timeout, params string[] args)
        {
            var start = new ProcessStartInfo("docker-compose")
            {
                WorkingDirectory = CommonDirectoryPath.GetSolutionDirectory().DirectoryPath,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var a in (string[])["--project-name", Project, "--file", "docker-compose.yml", .. args])
            {
                start.ArgumentList.Add(a);
            }

            start.Environment["RELAY_EDGE_PORT"] = _edgePort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            start.Environment["RELAY_PORT"] = _relayPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            using var process = Process.Start(start) ?? throw new InvalidOperationException("docker-compose did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"docker-compose {string.Join(' ', args)} ran longer than {timeout}: {await stderr}");
            }

            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"docker-compose {string.Join(' ', args)} exited with {process.ExitCode}:\n{await stderr}\n{await stdout}");
            }

            return await stdout;
        }
    }
}

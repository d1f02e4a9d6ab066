using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Docker.DotNet.Models;
using DotNet.Testcontainers.Builders;
using Relay.IntegrationTests.Infrastructure;
using Relay.IntegrationTests.State;

namespace Relay.IntegrationTests.Containers;

/// <summary>
/// Docker-compose.yml as a user runs it (<c>docker-compose up --build</c>), with the base images from
/// RELAY_* (.ci/docker.sh) and free host ports for the edge and both Relay replicas: MockInference, Redis, two
/// replicas sharing it, and the nginx edge balancing between them.
/// </summary>
[Collection(ComposeStackCollection.Name)]
public sealed class ComposeStackTests(ComposeStackTests.ComposeStack compose) : IClassFixture<ComposeStackTests.ComposeStack>
{
    private static readonly string[] Services = ["mock", "redis", "relay", "relay-b", "edge"];
    private static readonly string[] Replicas = ["relay", "relay-b"];

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
        foreach (var (dependency, dependent) in new[]
        {
            ("mock", "relay"), ("redis", "relay"), ("mock", "relay-b"), ("redis", "relay-b"), ("relay", "edge"), ("relay-b", "edge"),
        })
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

    [SkippableFact]
    public async Task Ticket_IssuedThroughReplicaA_IsRedeemedThroughReplicaB_OnceOnly()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await compose.WaitHealthyAsync("edge");
        using var client = new HttpClient();
        using var issue = new HttpRequestMessage(HttpMethod.Post, compose.RelayUrl + "/relay/v1/tickets")
        {
            Content = JsonContent.Create(new { model = "mock", stream = true, messages = new[] { new { role = "user", content = "Hi" } } }),
        };
        issue.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        issue.Headers.TryAddWithoutValidation("x-mock-max-tokens", "12");
        using var issued = await client.SendAsync(issue);
        Assert.True(issued.IsSuccessStatusCode, await issued.Content.ReadAsStringAsync());
        var url = JsonDocument.Parse(await issued.Content.ReadAsStringAsync()).RootElement.GetProperty("url").GetString()!;

        using (var redeemed = await client.GetAsync(compose.RelayBUrl + url, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.True(redeemed.StatusCode == HttpStatusCode.OK, $"replica B answered {(int)redeemed.StatusCode}: {await redeemed.Content.ReadAsStringAsync()}");
            var events = await ResumeClient.ReadAsync(redeemed);
            Assert.True(events[^1].IsDone, $"the stream did not finish: {events[^1].Data}");
            Assert.NotEmpty(ResumeClient.Text(events));
        }

        // Taken once in Redis: the issuing replica does not start a second stream with it.
        using var again = await client.GetAsync(compose.RelayUrl + url);
        await ErrorTests.AssertErrorAsync(again, 410, "invalid_request_error", "ticket_used");
    }

    [SkippableFact]
    public async Task ResumableStream_CutOnReplicaA_ResumesThroughReplicaB_WithLastEventId_AndTheTextIsTheUncutText()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await compose.WaitHealthyAsync("edge");
        using var client = new HttpClient();
        var knobs = new Dictionary<string, string> { ["x-mock-seed"] = "41", ["x-mock-max-tokens"] = "80", ["x-mock-tokens-per-second"] = "50", ["x-mock-ttft-ms"] = "0" };
        var response = await client.SendAsync(ResumeClient.Start(compose.RelayUrl, knobs), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var before = await ResumeClient.ReadAsync(response, take: 5);
        response.Dispose();

        using var resumed = await client.SendAsync(ResumeClient.Resume(compose.RelayBUrl, streamId, before[^1].Id), HttpCompletionOption.ResponseHeadersRead);
        Assert.True(resumed.StatusCode == HttpStatusCode.OK, $"replica B answered {(int)resumed.StatusCode}: {await resumed.Content.ReadAsStringAsync()}");
        var after = await ResumeClient.ReadAsync(resumed);
        Assert.True(after[^1].IsDone, $"the resumed stream did not finish: {after[^1].Data}");
        Assert.NotEmpty(ResumeClient.Text(after));

        // The same seed read uncut (a plain stream at full pace, through the stack to the stack's MockInference).
        var uncut = await ResumeClient.MockTextAsync(client, compose.EdgeUrl, knobs);
        Assert.Equal(uncut, ResumeClient.Text(before) + ResumeClient.Text(after));
        Assert.Equal(Enumerable.Range(1, before.Count + after.Count).Select(i => (long)i), before.Concat(after).Select(e => e.Sequence));
    }

    [SkippableFact]
    public async Task ThroughEdge_ConsecutiveStreams_AlternateBetweenTheReplicas()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await compose.WaitHealthyAsync("edge");
        using var client = new HttpClient();
        var run = Guid.NewGuid().ToString("N")[..8];
        var models = Enumerable.Range(1, 4).Select(i => $"mock-{run}-{i}").ToArray();
        var fast = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "0", ["x-mock-max-tokens"] = "5", ["x-mock-ttft-ms"] = "0" };
        foreach (var model in models)
        {
            using var response = await client.SendAsync(SseRead.ChatRequest(compose.EdgeUrl, headers: fast, model: model), HttpCompletionOption.ResponseHeadersRead);
            Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
        }

        // The replica that served a stream is the one whose usage record (the StreamEnded log line) names its model.
        var servedBy = await compose.ServedByAsync(models);
        Assert.All(servedBy, s => Assert.Single(s));
        for (var i = 1; i < models.Length; i++)
        {
            Assert.True(servedBy[i][0] != servedBy[i - 1][0], $"consecutive streams through the edge went to {string.Join(", ", servedBy.Select(s => s[0]))}");
        }
    }

    /// <summary>The compose project, up for the class, down (and cleaned up) after it.</summary>
    public sealed class ComposeStack : IAsyncLifetime
    {
        private const string Project = "relay-tests-compose";
        private readonly int _edgePort = FreePort.Next();
        private readonly int _relayPort = FreePort.Next();
        private readonly int _relayBPort = FreePort.Next();
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _containerIds = new();

        public string EdgeUrl => $"http://127.0.0.1:{_edgePort}";

        /// <summary>Replica A (the service <c>relay</c>) through its own published port.</summary>
        public string RelayUrl => $"http://127.0.0.1:{_relayPort}";

        /// <summary>Replica B (the service <c>relay-b</c>) through its own published port.</summary>
        public string RelayBUrl => $"http://127.0.0.1:{_relayBPort}";

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
            var id = await ContainerIdAsync(service);
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

        /// <summary>
        /// For each model, the replicas whose log has a usage record (StreamEnded, "model &lt;name&gt;,") for it, once
        /// every model has one (a bounded poll: a stream's record is written as it ends).
        /// </summary>
        public async Task<string[][]> ServedByAsync(string[] models)
        {
            using var docker = DockerEngine.NewClient();
            var clock = Stopwatch.StartNew();
            while (true)
            {
                var logs = new Dictionary<string, string>();
                foreach (var replica in Replicas)
                {
                    using var stream = await docker.Containers.GetContainerLogsAsync(await ContainerIdAsync(replica), new ContainerLogsParameters { ShowStdout = true, ShowStderr = true });
                    var (stdout, stderr) = await stream.ReadOutputToEndAsync(CancellationToken.None);
                    logs[replica] = stdout + stderr;
                }

                var servedBy = models.Select(m => Replicas.Where(r => logs[r].Contains($"model {m},", StringComparison.Ordinal)).ToArray()).ToArray();
                if (servedBy.All(static s => s.Length > 0) || clock.Elapsed > Deadline.Default)
                {
                    return servedBy;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }

        /// <summary>The id of the service's container, from the labels Compose puts on it (asked once: the CLI takes seconds per call).</summary>
        private async Task<string> ContainerIdAsync(string service)
        {
            if (_containerIds.TryGetValue(service, out var known))
            {
                return known;
            }

            using var docker = DockerEngine.NewClient();
            var filter = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"com.docker.compose.project={Project}"] = true, [$"com.docker.compose.service={service}"] = true },
            };
            var containers = await docker.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = filter });
            Assert.True(containers.Count == 1, $"{containers.Count} containers for the compose service {service}");
            return _containerIds[service] = containers[0].ID;
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
            start.Environment["RELAY_B_PORT"] = _relayBPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
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

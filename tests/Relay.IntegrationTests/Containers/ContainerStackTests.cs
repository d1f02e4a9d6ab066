using System.Net;
using System.Net.WebSockets;
using System.Text;
using DotNet.Testcontainers.Builders;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.Containers;

/// <summary>
/// The stack as containers (nginx edge -> Relay -> MockInference, built from the Dockerfiles). What the
/// process-based stack tests show, through real container networking, and what only containers show: docker stop.
/// </summary>
[Collection(ContainerStackCollection.Name)]
public sealed class ContainerStackTests(ContainerStackFixture stack)
{
    private static Dictionary<string, string> Paced(int tokensPerSecond, int tokens) => new()
    {
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = tokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-ttft-ms"] = "0",
    };

    [SkippableFact]
    public async Task ThroughEdge_WithNginxBufferingOn_TokensArriveIncrementally()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await StackAssertions.StreamsIncrementallyAsync(stack.EdgeUrl);
    }

    [SkippableFact]
    public async Task ThroughEdge_ErrorsAreOpenAIStyle()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        using var client = new HttpClient();
        var response = await client.PostAsync($"{stack.EdgeUrl}/v1/chat/completions", new StringContent("{nope", Encoding.UTF8, "application/json"));
        await ErrorTests.AssertErrorAsync(response, 400, "invalid_request_error", "invalid_json");
    }

    [SkippableFact]
    public async Task ThroughEdge_ClientAbort_ReachesTheMockInItsContainer()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(stack.EdgeUrl, headers: Paced(20, 400));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var id = response.Headers.GetValues("x-mock-request-id").Single();
        var content = 0;
        await SseRead.ReadAllAsync(response, stopAfter: e => e.Content.Length > 0 && ++content == 3);
        response.Dispose();

        var record = await MockRecords.WaitAsync(client, stack.UpstreamUrl, id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.True(record.GetProperty("tokens_generated").GetInt32() < 400, $"the mock generated the whole reply: {record}");
    }

    [SkippableFact]
    public async Task ThroughEdge_WebSocketBridge_StreamsAResponse()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        await StackAssertions.BridgeWorksAsync(stack.EdgeUrl);
    }

    [SkippableFact]
    public async Task Control_EdgeThatDropsUpgrade_WebSocketGets426()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        // The edge config as it was before WebSocket upgrades were forwarded: Connection "" for every request and no Upgrade forwarded.
        var fixedConfig = await File.ReadAllTextAsync(Path.Combine(CommonDirectoryPath.GetSolutionDirectory().DirectoryPath, "config", "nginx", "relay-edge.conf"));
        const string forwarding = "proxy_set_header Upgrade $http_upgrade;\n        proxy_set_header Connection $connection_upgrade;";
        Assert.Contains(forwarding, fixedConfig, StringComparison.Ordinal);
        var oldConfig = fixedConfig.Replace(forwarding, "proxy_set_header Connection \"\";", StringComparison.Ordinal);
        var oldEdge = await stack.StartAsync(stack.Container(stack.EdgeImage!, "old-edge")
            .WithResourceMapping(Encoding.UTF8.GetBytes(oldConfig), "/etc/nginx/conf.d/default.conf"));

        var ex = await Assert.ThrowsAsync<WebSocketException>(() => BridgeClient.ConnectAsync(ContainerStackFixture.Url(oldEdge)));
        Assert.Contains("426", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task DockerStop_SendsSigterm_TheStreamEndsWithRelayShutdown()
    {
        Skip.If(DockerEngine.SkipReason is not null, DockerEngine.SkipReason);
        // Its own Relay container (the shared one keeps serving the other tests), draining for 2 s: well inside
        // docker stop's 10 s before SIGKILL.
        var relay = await stack.StartAsync(stack.RelayContainer("relay-stopped").WithEnvironment("Relay__Shutdown__DrainSeconds", "2"));
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(ContainerStackFixture.Url(relay), headers: Paced(10, 300));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Task? stop = null;
        var content = 0;
        var events = await SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            if (e.Content.Length > 0 && ++content == 3)
            {
                stop = relay.StopAsync();
            }

            return false;
        }).WaitAsync(Deadline.Default);

        await stop!.WaitAsync(Deadline.Default);
        var last = events[^1];
        Assert.True(last.IsError, $"the stream was cut, last event: {last.Data}");
        Assert.Equal("relay_shutdown", last.Json.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.IsDone);
        // SIGTERM, a clean exit within docker stop's grace period: not SIGKILL (137).
        Assert.Equal(0, await relay.GetExitCodeAsync());
    }
}

using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>A client that goes away is normal traffic; only real forwarding failures are warnings.</summary>
public sealed class ForwardingLogTests
{
    private static readonly Dictionary<string, string?> DebugLogs = new() { ["Logging:LogLevel:Default"] = "Debug" };

    [Fact]
    public async Task AClientThatCancelsBeforeTheResponse_IsLoggedAtDebug_NotAsAWarning()
    {
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var upstream = await ScriptedUpstream.StartAsync(async context =>
        {
            arrived.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(static _ => { }, TaskScheduler.Default);
        });
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, DebugLogs);
        using var client = new HttpClient();
        using var cancel = new CancellationTokenSource();
        var send = client.SendAsync(SseRead.ChatRequest(relay.Url), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await arrived.Task.WaitAsync(Deadline.Default);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);

        var logged = await relay.WaitForLogAsync(static r => r.Id.Name is "ForwarderClientCancelled" or "ForwarderError");
        Assert.Equal(LogLevel.Debug, logged.Level);
        Assert.DoesNotContain(relay.Logs.GetSnapshot(), static r => r.Level >= LogLevel.Warning && (r.Category ?? "").StartsWith("Relay", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Control_AnUnreachableUpstream_IsStillAWarning()
    {
        await using var relay = await InProcessRelay.StartAsync($"http://127.0.0.1:{FreePort.Next()}", DebugLogs);
        using var client = new HttpClient();
        using var response = await client.SendAsync(SseRead.ChatRequest(relay.Url));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var logged = await relay.WaitForLogAsync(static r => r.Id.Name == "ForwarderError");
        Assert.Equal(LogLevel.Warning, logged.Level);
    }
}

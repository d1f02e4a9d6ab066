using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.WebSockets;

/// <summary>Shutdown, the browser token form, and keepalive of the WebSocket bridge.</summary>
public sealed class WebSocketSessionLifecycleTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    [Fact]
    public async Task Shutdown_EndsTheResponseWithAnErrorEvent_ThenClosesWith1001()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Shutdown:DrainSeconds"] = "1" });
        await using var client = await BridgeClient.ConnectAsync(relay.Url, WebSocketBridgeTests.Slow());
        await using var idle = await BridgeClient.ConnectAsync(relay.Url);
        await client.ReceiveAsync();
        await idle.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var content = 0;
        await client.ReceiveUntilAsync("response.chunk", m => m.Content.Length > 0 && ++content >= 2);

        var stop = relay.App.StopAsync();
        var messages = await client.ReceiveUntilAsync("response.done");
        var error = messages.Last(m => m.Type == "error");
        Assert.Equal("relay_shutdown", error.Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("failed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
        while (await client.ReceiveAsync() is not null)
        {
        }

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, client.Socket.CloseStatus);

        // A socket with no response in flight is told and closed at once.
        Assert.Equal("relay_shutdown", (await idle.ReceiveAsync())!.Json.GetProperty("error").GetProperty("code").GetString());
        Assert.Null(await idle.ReceiveAsync());
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, idle.Socket.CloseStatus);
        await stop.WaitAsync(Deadline.Default);
    }

    [Fact]
    public async Task TokenSubprotocol_BecomesTheUpstreamAuthorization_OnlyTheProtocolNameIsEchoed()
    {
        await using var auth = await AuthRecordingUpstream.StartAsync();
        await using var relay = await InProcessRelay.StartAsync(auth.Url);

        await using (var client = await BridgeClient.ConnectAsync(relay.Url, subprotocols: ["relay.v1", "openai-insecure-api-key.sk-test-123"]))
        {
            Assert.Equal("relay.v1", client.Socket.SubProtocol);
            await client.ReceiveAsync();
            await client.SendAsync(BridgeClient.Create());
            var done = (await client.ReceiveUntilAsync("response.done"))[^1];
            Assert.Equal("completed", done.Json.GetProperty("response").GetProperty("status").GetString());
        }

        Assert.Equal("Bearer sk-test-123", Assert.Single(auth.Authorizations));
        Assert.DoesNotContain(relay.Logs.GetSnapshot(), l => l.Message.Contains("sk-test-123", StringComparison.Ordinal));

        // Control: without the token protocol the upstream gets no credentials.
        await using (var client = await BridgeClient.ConnectAsync(relay.Url, subprotocols: ["relay.v1"]))
        {
            await client.ReceiveAsync();
            await client.SendAsync(BridgeClient.Create());
            await client.ReceiveUntilAsync("response.done");
        }

        Assert.Equal(["Bearer sk-test-123", ""], auth.Authorizations);
    }

    [Fact]
    public async Task UnansweredPings_DropTheSocket_AndCancelTheUpstream()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:WebSocket:KeepAliveIntervalSeconds"] = "0.2",
            ["Relay:WebSocket:KeepAliveTimeoutSeconds"] = "0.5",
        });
        var (socket, head) = await RawWebSocket.ConnectAsync(relay.Url, extraHeaders: "x-mock-tokens-per-second: 5\r\nx-mock-ttft-ms: 0\r\nx-mock-max-tokens: 200\r\n");
        await using var owned = socket;
        Assert.StartsWith("HTTP/1.1 101", head);
        await socket.WriteAsync(RawWebSocket.ClientFrame(1, System.Text.Encoding.UTF8.GetBytes(
            """{"type":"response.create","response":{"model":"mock","messages":[{"role":"user","content":"hi"}]}}""")));

        // This client reads but never answers a ping: the server pings, then gives up on it.
        var pinged = false;
        string? upstreamId = null;
        while (await socket.ReadFrameAsync(TimeSpan.FromSeconds(10)) is { } frame)
        {
            pinged |= frame.Opcode == 9;
            if (upstreamId is null && frame.Opcode == 1 && frame.Text.Contains("\"chatcmpl-", StringComparison.Ordinal))
            {
                var chunkId = System.Text.Json.JsonDocument.Parse(frame.Text).RootElement.GetProperty("chunk").GetProperty("id").GetString()!;
                upstreamId = chunkId["chatcmpl-".Length..];
            }
        }

        Assert.True(pinged, "the server sent no ping");
        Assert.NotNull(upstreamId);
        var record = await upstream.WaitForRecordAsync(upstreamId, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        Assert.True(record.GetProperty("tokens_generated").GetInt32() < 200);
    }

    [Fact]
    public async Task Http2ExtendedConnect_RunsAResponse()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, h2c: true);
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = System.Net.HttpVersion.Version20;
        socket.Options.HttpVersionPolicy = System.Net.Http.HttpVersionPolicy.RequestVersionExact;
        socket.Options.AddSubProtocol("relay.v1");
        foreach (var (k, v) in WebSocketBridgeTests.Fast(5))
        {
            socket.Options.SetRequestHeader(k, v);
        }

        using var invoker = new System.Net.Http.HttpMessageInvoker(new System.Net.Http.SocketsHttpHandler());
        await socket.ConnectAsync(new Uri("ws" + relay.H2cUrl!["http".Length..] + "/v1/chat/ws"), invoker, CancellationToken.None);
        Assert.Equal("relay.v1", socket.SubProtocol);
        var buffer = new byte[64 * 1024];
        await socket.SendAsync(System.Text.Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(BridgeClient.Create())), WebSocketMessageType.Text, true, CancellationToken.None);
        string? last = null;
        using var timeout = new CancellationTokenSource(Deadline.Default);
        while (last is null || !last.Contains("\"response.done\"", StringComparison.Ordinal))
        {
            var result = await socket.ReceiveAsync(buffer, timeout.Token);
            last = System.Text.Encoding.UTF8.GetString(buffer, 0, result.Count);
        }

        Assert.Contains("\"completed\"", last);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
    }

    /// <summary>A test upstream that records the Authorization header of each chat request and streams a short reply.</summary>
    private sealed class AuthRecordingUpstream : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private AuthRecordingUpstream(WebApplication app) => _app = app;

        public List<string> Authorizations { get; } = [];

        public string Url => MockUpstreamFixture.Addresses(_app).First();

        public static async Task<AuthRecordingUpstream> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var upstream = new AuthRecordingUpstream(app);
            app.MapPost("/v1/chat/completions", async context =>
            {
                lock (upstream.Authorizations)
                {
                    upstream.Authorizations.Add(context.Request.Headers.Authorization.ToString());
                }

                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n"
                    + "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
            });
            await app.StartAsync();
            return upstream;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}

using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Compressed event streams that still flush. A client that decompresses incrementally receives
/// each event when Relay flushes it; the control (a compressor without the per-event flush) holds them back.
/// </summary>
public sealed class CompressionTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, new Dictionary<string, string?>
{
    ["Relay:Compression:Enabled"] = "true",
})
{
    [Theory]
    [InlineData("gzip")]
    [InlineData("br")]
    public async Task CompressedStream_IsEncodedAndVaries_AndEachEventArrivesWhenFlushed(string encoding)
    {
        // The encoding and Vary, as the wire shows them.
        using (var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None }))
        {
            using var request = SseRead.ChatRequest(Relay.Url, streamOptions: new { chunk_size = 1 }, headers: Fast());
            request.Headers.TryAddWithoutValidation("Accept-Encoding", encoding);
            using var response = await raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal([encoding], response.Content.Headers.ContentEncoding);
            Assert.Contains("Accept-Encoding", response.Headers.Vary);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        }

        // Each event, decompressed as bytes arrive, reaches the client when Relay flushes it: the upstream holds the rest
        // of its stream until the client has the first content (a compressor waiting for a block would hold it to the end).
        await using var gated = await GatedChatUpstream.StartAsync(before: 1, after: 6);
        await using var relay = await InProcessRelay.StartAsync(gated.Url, new Dictionary<string, string?> { ["Relay:Compression:Enabled"] = "true" });
        var method = encoding == "gzip" ? DecompressionMethods.GZip : DecompressionMethods.Brotli;
        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = method });
        using var paced = SseRead.ChatRequest(relay.Url, streamOptions: new { chunk_size = 1 });
        using var streamed = await client.SendAsync(paced, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(streamed, stopAfter: OpenOnFirstContent(gated.Open));
        Assert.True(await gated.OpenedByClient, "the first event reached the client only after the upstream ended");
        Assert.Equal(7, events.Count(static e => e.Content.Length > 0));
        Assert.True(events[^1].IsDone);
    }

    [Fact]
    public async Task Control_CompressionWithoutAPerEventFlush_HoldsTheEventsBack()
    {
        // The same compression middleware on a server that writes SSE events without flushing them: the
        // compressor keeps them until the response ends, which is what a per-event flush prevents. The server holds
        // the rest of its stream until the client has the first event, or (as here) until the gate opens by itself.
        var opened = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var ended = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddResponseCompression(static o => o.MimeTypes = ["text/event-stream"]);
        await using var app = builder.Build();
        app.UseResponseCompression();
        var requests = 0;
        app.MapGet("/events", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/event-stream";
            // The Stream API, with no flush (HttpResponse.WriteAsync(string) would flush each write).
            await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes("data: {\"n\":0}\n\n"));
            if (Interlocked.Increment(ref requests) > 1)
            {
                // The streaming read below is the second request; the first only checks the encoding.
                _ = Task.Delay(TimeSpan.FromSeconds(1)).ContinueWith(_ => opened.TrySetResult(false), TaskScheduler.Default);
                await opened.Task.WaitAsync(Deadline.Default);
            }

            for (var i = 1; i < 8; i++)
            {
                await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes($"data: {{\"n\":{i}}}\n\n"));
            }

            ended.TrySetResult(SseRead.NowUs());
        });
        await app.StartAsync();

        using (var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None }))
        {
            using var compressed = new HttpRequestMessage(HttpMethod.Get, MockUpstreamFixture.Addresses(app).First() + "/events");
            compressed.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip");
            using var rawResponse = await raw.SendAsync(compressed);
            Assert.Equal(["gzip"], rawResponse.Content.Headers.ContentEncoding);
        }

        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.GZip });
        using var response = await client.GetAsync(MockUpstreamFixture.Addresses(app).First() + "/events", HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            opened.TrySetResult(true);
            return false;
        });
        Assert.Equal(8, events.Count);
        Assert.False(await opened.Task, "the first event reached the client while the server held the rest: nothing was held back");
        Assert.True(events[0].ReceivedUs > await ended.Task, "the first event arrived before the server ended");
    }

    [Fact]
    public async Task CompressionOff_ByDefault()
    {
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url);
        using var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });
        using var request = SseRead.ChatRequest(relay.Url, headers: Fast());
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, br");
        using var response = await raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Empty(response.Content.Headers.ContentEncoding);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
    }

    [Fact]
    public async Task AnUpstreamBodyAlreadyCompressed_IsNotCompressedAgain()
    {
        var json = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[]}";
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var gzipping = builder.Build();
        gzipping.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            context.Response.ContentType = "application/json";
            context.Response.Headers.ContentEncoding = "gzip";
            using var buffer = new MemoryStream();
            await using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
            {
                await gzip.WriteAsync(Encoding.UTF8.GetBytes(json));
            }

            await context.Response.Body.WriteAsync(buffer.ToArray());
        });
        await gzipping.StartAsync();
        await using var relay = await InProcessRelay.StartAsync(MockUpstreamFixture.Addresses(gzipping).First(), new Dictionary<string, string?> { ["Relay:Compression:Enabled"] = "true" });

        using var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });
        using var request = SseRead.ChatRequest(relay.Url, stream: false);
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, br");
        using var response = await raw.SendAsync(request);
        Assert.Equal(["gzip"], response.Content.Headers.ContentEncoding);
        await using var once = new GZipStream(await response.Content.ReadAsStreamAsync(), CompressionMode.Decompress);
        Assert.Equal(json, await new StreamReader(once).ReadToEndAsync());
    }

    [Fact]
    public async Task WebSocketBridge_OnACompressedRoute_IsNotCompressed()
    {
        // A browser sends Accept-Encoding on the WebSocket handshake; the bridge's responses become frames, never gzip.
        // (A regression guard: the bridge does not carry the handshake's Accept-Encoding into its requests today either.)
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, new Dictionary<string, string> { ["Accept-Encoding"] = "gzip, br", ["x-mock-ttft-ms"] = "0" });
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        Assert.Contains(messages, m => m.Content.Length > 0);
        Assert.Equal("completed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
    }

    /// <summary>A stop-after callback that never stops and opens a gate on the first content.</summary>
    private static Func<ReceivedEvent, bool> OpenOnFirstContent(Action open) => e =>
    {
        if (e.Content.Length > 0)
        {
            open();
        }

        return false;
    };

    private static Dictionary<string, string> Fast() => new()
    {
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-tokens-per-second"] = "0",
        ["x-mock-max-tokens"] = "5",
    };
}

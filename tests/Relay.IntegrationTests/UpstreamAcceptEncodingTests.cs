using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Relay parses a chat stream token by token, so it asks the upstream for <c>Accept-Encoding: identity</c> whatever the
/// client accepts; an upstream that gzips event streams when asked (the scripted one here) would otherwise send Relay
/// compressed bytes to parse. Relay's own compression of its response still follows the client's header.
/// </summary>
public sealed class UpstreamAcceptEncodingTests : IAsyncLifetime
{
    private const string Chunk = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";

    private readonly ConcurrentQueue<string> _acceptEncodings = new();
    private ScriptedUpstream _upstream = null!;

    public async Task InitializeAsync() => _upstream = await ScriptedUpstream.StartAsync(async context =>
    {
        var accept = context.Request.Headers.AcceptEncoding.ToString();
        _acceptEncodings.Enqueue(accept);
        context.Response.ContentType = "text/event-stream";
        if (!accept.Contains("gzip", StringComparison.OrdinalIgnoreCase))
        {
            await context.Response.WriteAsync(Chunk + Chunk + "data: [DONE]\n\n");
            return;
        }

        // A compressing upstream that still flushes each event.
        context.Response.Headers.ContentEncoding = "gzip";
        await using var gzip = new GZipStream(context.Response.Body, CompressionLevel.Fastest, leaveOpen: true);
        foreach (var text in new[] { Chunk, Chunk, "data: [DONE]\n\n" })
        {
            await gzip.WriteAsync(Encoding.UTF8.GetBytes(text));
            await gzip.FlushAsync();
        }
    });

    public async Task DisposeAsync() => await _upstream.DisposeAsync();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StreamingChatRequest_AsksTheUpstreamForIdentity_TheClientStillGetsWellFormedEvents(bool relayCompression)
    {
        await using var relay = await InProcessRelay.StartAsync(_upstream.Url, new Dictionary<string, string?> { ["Relay:Compression:Enabled"] = relayCompression ? "true" : "false" });
        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });
        using var request = SseRead.ChatRequest(relay.Url, headers: new Dictionary<string, string> { ["Accept-Encoding"] = "gzip" });
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        Assert.Equal(["identity"], _acceptEncodings);
        // Relay's own compression, when on, still answers the client's Accept-Encoding.
        Assert.Equal(relayCompression ? ["gzip"] : [], response.Content.Headers.ContentEncoding);
        var body = await response.Content.ReadAsByteArrayAsync();
        var text = relayCompression ? Decompress(body) : Encoding.UTF8.GetString(body);
        Assert.Contains("\"content\":\"hi", text);
        Assert.EndsWith("data: [DONE]\n\n", text);
    }

    [Fact]
    public async Task Control_TheUpstreamAskedWithTheClientsAcceptEncoding_GzipsTheStream()
    {
        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });
        using var request = SseRead.ChatRequest(_upstream.Url, headers: new Dictionary<string, string> { ["Accept-Encoding"] = "gzip" });
        using var response = await client.SendAsync(request);

        Assert.Equal(["gzip"], response.Content.Headers.ContentEncoding);
        Assert.EndsWith("data: [DONE]\n\n", Decompress(await response.Content.ReadAsByteArrayAsync()));
    }

    [Fact]
    public async Task NonStreamingRequest_KeepsTheClientsAcceptEncoding()
    {
        await using var relay = await InProcessRelay.StartAsync(_upstream.Url);
        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });
        using var request = new HttpRequestMessage(HttpMethod.Get, relay.Url + "/v1/models");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip");
        using var response = await client.SendAsync(request);

        Assert.Equal(["gzip"], _acceptEncodings);
    }

    private static string Decompress(byte[] body)
    {
        using var gzip = new GZipStream(new MemoryStream(body), CompressionMode.Decompress);
        using var reader = new StreamReader(gzip, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}

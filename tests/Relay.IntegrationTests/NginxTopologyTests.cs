using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Nginx with its default <c>proxy_buffering on</c> in front of Relay (a corporate proxy), and nginx in
/// front of the inference server. "Streams" is causal: the upstream holds the rest of its stream until the client
/// received the first content (<see cref="GatedChatUpstream"/>). The control case shows that the test can fail.
/// </summary>
public sealed class NginxTopologyTests
{
    private static readonly HttpClient Client = new();

    // A corporate edge as they come: nginx defaults (proxy_buffering on) plus gzip for every text type, which
    // holds small writes in buffered mode until a buffer fills or the response ends.
    private const string CorporateEdge = "gzip on; gzip_types text/event-stream application/json; gzip_min_length 1; gzip_proxied any;";

    [NginxFact]
    public async Task BufferingNginxInFront_StillStreams_BecauseOfXAccelBuffering()
    {
        await using var upstream = await GatedChatUpstream.StartAsync(before: 2, after: 20);
        await using var relay = await InProcessRelay.StartAsync(upstream.Url);
        await using var nginx = await NginxProcess.StartAsync(relay.Url, CorporateEdge);
        var (first, _) = await ReadGatedAsync(nginx.Url, upstream, gzip: true);
        Assert.True(await upstream.OpenedByClient, "the first content never reached the client through buffering nginx while the upstream held the rest");
        Assert.True(first < await upstream.EndedUs);
    }

    [NginxFact]
    public async Task Control_BufferingNginx_IgnoringXAccelBuffering_HoldsTheStream()
    {
        // Without the header's effect nginx buffers: the first content arrives only once the upstream is done (the
        // upstream's gate opens by itself here, since the client cannot open it).
        await using var upstream = await GatedChatUpstream.StartAsync(before: 2, after: 20, openByItselfAfter: TimeSpan.FromSeconds(1));
        await using var relay = await InProcessRelay.StartAsync(upstream.Url);
        await using var nginx = await NginxProcess.StartAsync(relay.Url, CorporateEdge + " proxy_ignore_headers X-Accel-Buffering;");
        var (first, _) = await ReadGatedAsync(nginx.Url, upstream, gzip: true);
        Assert.False(await upstream.OpenedByClient, "expected nginx to buffer the stream, but the client received the first content while the upstream held the rest");
        Assert.True(first > await upstream.EndedUs, "expected nginx to buffer the stream, but the first content arrived before the upstream ended");
    }

    [NginxFact]
    public async Task RelayInFrontOfNginxInFrontOfUpstream_Streams()
    {
        await using var upstream = await GatedChatUpstream.StartAsync(before: 2, after: 20);
        await using var nginx = await NginxProcess.StartAsync(upstream.Url, "proxy_buffering off;");
        await using var relay = await InProcessRelay.StartAsync(nginx.Url);
        await ReadGatedAsync(relay.Url, upstream);
        Assert.True(await upstream.OpenedByClient, "the first content never reached the client through Relay -> nginx while the upstream held the rest");
    }

    /// <summary>
    /// Reads the whole stream, opening the upstream's gate when the first content arrives; returns when the first
    /// content arrived and the events (the stream must complete).
    /// </summary>
    private static async Task<(long FirstContentUs, List<ReceivedEvent> Events)> ReadGatedAsync(string url, GatedChatUpstream upstream, bool gzip = false)
    {
        using var gzipClient = new HttpClient(new HttpClientHandler { AutomaticDecompression = System.Net.DecompressionMethods.GZip });
        var client = gzip ? gzipClient : Client;
        using var request = SseRead.ChatRequest(url);
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            if (e.Content.Length > 0)
            {
                upstream.Open();
            }

            return false;
        });
        Assert.True(events[^1].IsDone, "the stream must complete");
        Assert.Equal(string.Concat(Enumerable.Range(0, 22).Select(static i => $"token{i} ")), string.Concat(events.Select(static e => e.Content)));
        return (events.First(static e => e.Content.Length > 0).ReceivedUs, events);
    }
}

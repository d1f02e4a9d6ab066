using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Nginx with its default <c>proxy_buffering on</c> in front of Relay (a corporate proxy), and nginx in
/// front of the inference server. The control case shows that the test can fail.
/// </summary>
public sealed class NginxTopologyTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    // A corporate edge as they come: nginx defaults (proxy_buffering on) plus gzip for every text type, which
    // holds small writes in buffered mode until a buffer fills or the response ends.
    private const string CorporateEdge = "gzip on; gzip_types text/event-stream application/json; gzip_min_length 1; gzip_proxied any;";

    [NginxFact]
    public async Task BufferingNginxInFront_StillStreams_BecauseOfXAccelBuffering()
    {
        await using var nginx = await NginxProcess.StartAsync(Relay.Url, CorporateEdge);
        var spread = await FirstContentLeadMsAsync(nginx.Url, gzip: true);
        Assert.True(spread > 1500, $"through buffering nginx the first token arrived only {spread} ms before the last was emitted");
    }

    [NginxFact]
    public async Task Control_BufferingNginx_IgnoringXAccelBuffering_HoldsTheStream()
    {
        // Without the header's effect nginx buffers: the first token arrives only once the upstream is done.
        await using var nginx = await NginxProcess.StartAsync(Relay.Url, CorporateEdge + " proxy_ignore_headers X-Accel-Buffering;");
        var spread = await FirstContentLeadMsAsync(nginx.Url, gzip: true);
        Assert.True(spread < 500, $"expected nginx to buffer the stream, but the first token led the last by {spread} ms");
    }

    [NginxFact]
    public async Task RelayInFrontOfNginxInFrontOfUpstream_Streams()
    {
        await using var nginx = await NginxProcess.StartAsync(Upstream.Url, "proxy_buffering off;");
        await using var relay = await InProcessRelay.StartAsync(nginx.Url);
        var spread = await FirstContentLeadMsAsync(relay.Url);
        Assert.True(spread > 1500, $"through Relay -> nginx the first token arrived only {spread} ms before the last was emitted");
    }

    /// <summary>How long before the upstream emitted its last token the client had its first content (ms).</summary>
    private async Task<long> FirstContentLeadMsAsync(string url, bool gzip = false)
    {
        using var gzipClient = new HttpClient(new HttpClientHandler { AutomaticDecompression = System.Net.DecompressionMethods.GZip });
        var client = gzip ? gzipClient : Client;
        using var request = SseRead.ChatRequest(url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "10", ["x-mock-max-tokens"] = "25", ["x-mock-ttft-ms"] = "0",
        });
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone, "the stream must complete");
        var first = events.First(e => e.Content.Length > 0);
        var lastEmitted = events.Where(e => !e.IsDone && !e.IsError).Max(e => e.Json.GetProperty("mock_emitted_us").GetInt64());
        return (lastEmitted - first.ReceivedUs) / 1000;
    }
}

using System.Net;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Relay.IntegrationTests;

/// <summary>
/// Egress through a corporate forward proxy. A real tinyproxy (with Basic authentication, as
/// corporate proxies have) tunnels Relay's requests to the simulated upstream over TLS, whose certificate a private CA
/// signed. The environment's <c>HTTPS_PROXY</c>/<c>NO_PROXY</c> are process-wide (read once by
/// <see cref="HttpClient.DefaultProxy"/>), so those tests run Relay as a child process; a cluster's own
/// <c>HttpClient:WebProxy</c> runs in this process.
/// </summary>
public sealed class EgressProxyTests : IAsyncLifetime
{
    private const string ProxyUser = "relay";
    private const string ProxyPassword = "pr0xy-pw-4c1d";

    private readonly string _directory = Directory.CreateTempSubdirectory("relay-egress-").FullName;
    private PrivateCertificateAuthority _ca = null!;
    private TlsMockUpstream _upstream = null!;
    private TinyproxyProcess _proxy = null!;

    public async Task InitializeAsync()
    {
        _ca = new PrivateCertificateAuthority(_directory);
        _upstream = await TlsMockUpstream.StartAsync(_ca.IssueServerCertificate(IPAddress.Loopback), _ca.TrustingClient());
        _proxy = await TinyproxyProcess.StartAsync((ProxyUser, ProxyPassword));
    }

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }

        _ca?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private string ProxyWithCredentials => $"http://{ProxyUser}:{ProxyPassword}@127.0.0.1:{_proxy.Port}";

    private string ExpectedConnect => $"CONNECT 127.0.0.1:{_upstream.Port} HTTP/1.1";

    /// <summary>
    /// Relay as a child process with <paramref name="environment"/>. It trusts the upstream's CA through the system's
    /// bundle (<c>SSL_CERT_FILE</c>), so that what these tests show depends on the proxy settings alone.
    /// </summary>
    private Task<RelayChildProcess> StartRelayAsync(Dictionary<string, string> environment)
        => RelayChildProcess.StartAsync(_upstream.Url, new Dictionary<string, string>(environment) { ["SSL_CERT_FILE"] = _ca.BundlePath });

    private static Dictionary<string, string> Paced(int tokensPerSecond, int maxTokens) => new()
    {
        ["x-mock-ttft-ms"] = "0",
        ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["x-mock-max-tokens"] = maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    [TinyproxyFact]
    public async Task HttpsProxyFromTheEnvironment_TunnelsTheHttpsUpstreamsStream_EachEventArrivesBeforeTheNextIsEmitted()
    {
        await using var relay = await StartRelayAsync(new() { ["HTTPS_PROXY"] = ProxyWithCredentials });
        // One request first: a cold Relay process compiles its stream path on the first events (hundreds of ms under load).
        await AssertStreamsAsync(relay.Url);
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, streamOptions: new { chunk_size = 1 }, headers: Paced(10, 20));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);

        Assert.True(events[^1].IsDone);
        var content = events.Where(static e => e.Content.Length > 0).ToList();
        Assert.True(content.Count >= 6, $"{content.Count} content events");
        // 20 tokens 100 ms apart: a tunnel (or a proxy) that buffered would deliver the first only after the last was
        // emitted. An order of events, not a bound on each event's delay (a loaded machine may delay one by 100 ms).
        var lastEmitted = content[^1].Json.GetProperty("mock_emitted_us").GetInt64();
        Assert.True(content[0].ReceivedUs < lastEmitted, $"the first content arrived {(content[0].ReceivedUs - lastEmitted) / 1000.0} ms after the last was emitted");

        Assert.Contains(ExpectedConnect, _proxy.ConnectRequests());
        // The proxy URL is logged without its credentials.
        Assert.Contains($"HTTPS_PROXY=http://***@127.0.0.1:{_proxy.Port}", relay.Output);
        Assert.DoesNotContain(ProxyPassword, relay.Output);
    }

    [TinyproxyFact]
    public async Task ClientAbort_ThroughTheProxyTunnel_CancelsTheUpstream()
    {
        await using var relay = await StartRelayAsync(new() { ["HTTPS_PROXY"] = ProxyWithCredentials });
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: Paced(20, 500));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        await SseRead.ReadAllAsync(response, stopAfter: static e => e.Content.Length > 0);
        response.Dispose();

        var record = await _upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
        Assert.True(MockUpstreamFixture.IsAborted(record));
        Assert.Contains(ExpectedConnect, _proxy.ConnectRequests());
    }

    [TinyproxyFact]
    public async Task HttpsProxyThatIsDown_TheRequestGets502_RelayDoesNotGoAroundIt()
    {
        // A corporate network has no direct route out: a proxy that cannot be reached is a failure, not a detour.
        await using var relay = await StartRelayAsync(new() { ["HTTPS_PROXY"] = $"http://127.0.0.1:{FreePort.Next()}" });
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: Paced(100, 5));
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", await ErrorCodeAsync(response));
    }

    [TinyproxyFact]
    public async Task NoProxy_NamingTheUpstream_GoesDirect_TheProxySeesNoConnect()
    {
        await using var relay = await StartRelayAsync(new() { ["HTTPS_PROXY"] = ProxyWithCredentials, ["NO_PROXY"] = "localhost,127.0.0.1" });
        await AssertStreamsAsync(relay.Url);
        Assert.Empty(_proxy.ConnectRequests());
    }

    [TinyproxyFact]
    public async Task Control_WithoutProxySettings_RelayGoesDirect_TheProxySeesNoConnect()
    {
        await using var relay = await StartRelayAsync([]);
        await AssertStreamsAsync(relay.Url);
        Assert.Empty(_proxy.ConnectRequests());
        Assert.DoesNotContain("proxy", relay.Output, StringComparison.OrdinalIgnoreCase);
    }

    [TinyproxyFact]
    public async Task ClusterWebProxy_WithCredentialsInItsAddress_TunnelsTheStream_AndNoLogShowsThePassword()
    {
        await using var relay = await InProcessRelay.StartAsync(_upstream.Url, ClusterThroughProxy(ProxyWithCredentials));
        await AssertStreamsAsync(relay.Url);

        Assert.Contains(ExpectedConnect, _proxy.ConnectRequests());
        Assert.Contains(relay.Logs.GetSnapshot(), r => r.Message.Contains($"through the proxy http://***@127.0.0.1:{_proxy.Port}", StringComparison.Ordinal));
        AuthTests.AssertNotLogged(relay, ProxyPassword);
    }

    [TinyproxyFact]
    public async Task ClusterWebProxy_WithAWrongPassword_Gets502_AndNoLogShowsThePassword()
    {
        const string wrong = "wrong-pw-77e1";
        var settings = ClusterThroughProxy($"http://{ProxyUser}:{wrong}@127.0.0.1:{_proxy.Port}");
        settings["Relay:Resilience:MaxAttempts"] = "1";
        await using var relay = await InProcessRelay.StartAsync(_upstream.Url, settings);
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: Paced(100, 5));
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", await ErrorCodeAsync(response));
        AuthTests.AssertNotLogged(relay, wrong);
    }

    [TinyproxyFact]
    public async Task Control_YarpsDefaultFactory_IgnoresCredentialsInTheProxyAddress_AndItsErrorQuotesThem()
    {
        // What Relay's factory fixes: YARP builds WebProxy(address) as given; SocketsHttpHandler does not authenticate
        // with the address's user info, so the proxy answers 407, and the exception message carries the address.
        using var invoker = new ForwarderHttpClientFactory().CreateClient(new ForwarderHttpClientContext
        {
            ClusterId = "c",
            OldConfig = HttpClientConfig.Empty,
            OldMetadata = null,
            OldClient = null,
            NewConfig = new HttpClientConfig { WebProxy = new WebProxyConfig { Address = new Uri(ProxyWithCredentials) } },
            NewMetadata = null,
        });
        using var request = new HttpRequestMessage(HttpMethod.Get, _upstream.Url + "/v1/models");
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => invoker.SendAsync(request, CancellationToken.None));

        Assert.Contains("407", error.ToString());
        Assert.Contains(ExpectedConnect, _proxy.ConnectRequests());
    }

    private Dictionary<string, string?> ClusterThroughProxy(string proxyAddress) => new()
    {
        ["ReverseProxy:Routes:chat:ClusterId"] = "corp",
        ["ReverseProxy:Routes:chat:Match:Path"] = "/v1/{**rest}",
        ["ReverseProxy:Clusters:corp:Destinations:openai:Address"] = _upstream.Url,
        ["ReverseProxy:Clusters:corp:HttpClient:WebProxy:Address"] = proxyAddress,
        // The cluster's own CA bundle (cluster metadata), not the global one.
        ["ReverseProxy:Clusters:corp:Metadata:Relay.CaBundlePath"] = _ca.BundlePath,
    };

    private static async Task AssertStreamsAsync(string relayUrl)
    {
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relayUrl, headers: Paced(200, 10));
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.Contains(events, static e => e.Content.Length > 0);
        Assert.True(events[^1].IsDone);
    }

    internal static async Task<string?> ErrorCodeAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString();
}

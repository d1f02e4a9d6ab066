using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Auth;
using Relay.Middleware.Hosting;
using Yarp.ReverseProxy.Configuration;

namespace Relay.IntegrationTests;

/// <summary>
/// What clients send that Relay must carry or refuse properly: non-ASCII header values, JSON
/// Relay cannot re-serialise, requests that reach an upstream's bare error, uploads that are too slow; and the log
/// line every unhandled exception leaves.
/// </summary>
public sealed class RequestInputTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    private const string SseReply = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n";

    // ---- Item 5: non-ASCII request header values ----

    [Fact]
    public async Task NonAsciiHeaderValues_OverHttp11_ReachTheUpstreamAsTheUtf8BytesSent()
    {
        // A browser's EventSource reconnects with the last id it saw, as UTF-8 (the WHATWG cases use '…').
        await using var echo = RawHttpUpstream.Start(static _ => RawHttpUpstream.Response(200, "application/json", "{}"));
        await using var relay = await InProcessRelay.StartAsync(echo.Url);
        var request = Encoding.UTF8.GetBytes("GET /v1/events/x HTTP/1.1\r\nHost: relay\r\nLast-Event-ID: 42…\r\nX-Note: café\r\nConnection: close\r\n\r\n");

        var (head, body) = await ExchangeAsync(relay.Url, request);

        Assert.True(head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), head + Encoding.UTF8.GetString(body));
        var received = await echo.NextRequestAsync();
        Assert.Equal("42…", received.Header("Last-Event-ID"));
        Assert.Equal("café", received.Header("X-Note"));
    }

    [Fact]
    public async Task NonAsciiHeaderValues_OverHttp2_ReachTheUpstreamAsTheUtf8BytesSent()
    {
        await using var echo = RawHttpUpstream.Start(static _ => RawHttpUpstream.Response(200, "application/json", "{}"));
        await using var relay = await InProcessRelay.StartAsync(echo.Url, h2c: true);
        using var handler = new SocketsHttpHandler { RequestHeaderEncodingSelector = static (_, _) => Encoding.UTF8 };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, relay.H2cUrl + "/v1/events/x") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.TryAddWithoutValidation("Last-Event-ID", "42…");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("42…", (await echo.NextRequestAsync()).Header("Last-Event-ID"));
    }

    [Fact]
    public async Task ClusterWithoutARequestHeaderEncoding_GetsUtf8_AndOneThatChoosesItsOwnKeepsIt()
    {
        var filter = new RelayClusterConfigFilter();
        Assert.Equal("utf-8", (await filter.ConfigureClusterAsync(new ClusterConfig { ClusterId = "c" }, default)).HttpClient!.RequestHeaderEncoding);

        var latin1 = new ClusterConfig { ClusterId = "c", HttpClient = new HttpClientConfig { RequestHeaderEncoding = "latin1", MaxConnectionsPerServer = 3 } };
        var kept = (await filter.ConfigureClusterAsync(latin1, default)).HttpClient!;
        Assert.Equal("latin1", kept.RequestHeaderEncoding);
        Assert.Equal(3, kept.MaxConnectionsPerServer);
    }

    [Fact]
    public async Task Control_HttpClientWithoutAHeaderEncoding_RefusesNonAsciiHeaderValues()
    {
        // What YARP's forwarder did before Relay gave it an encoding: the request fails before it is sent, and the
        // client got 502 upstream_unreachable for an upstream that was never called.
        await using var echo = RawHttpUpstream.Start(static _ => RawHttpUpstream.Response(200, "application/json", "{}"));
        using var client = new HttpClient(new SocketsHttpHandler());
        using var request = new HttpRequestMessage(HttpMethod.Get, echo.Url + "/v1/events/x");
        request.Headers.TryAddWithoutValidation("Last-Event-ID", "42…");

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(request));

        Assert.Contains("ASCII", failure.Message, StringComparison.Ordinal);
        Assert.False(echo.ReceivedAny);
    }

    [Fact]
    public async Task HeaderValueWithALineBreak_Gets400NamingTheHeader_AndTheUpstreamIsNotCalled()
    {
        // A query token is percent-decoded into the Authorization header: %0D%0A would be a line break in it, which
        // HTTP does not allow (and which must never become a second header upstream).
        await using var echo = RawHttpUpstream.Start(static _ => RawHttpUpstream.Response(200, "application/json", "{}"));
        await using var relay = await InProcessRelay.StartAsync(echo.Url, new Dictionary<string, string?> { ["Relay:Auth:QueryToken"] = "true" });

        using var response = await Client.GetAsync(relay.Url + "/v1/models?access_token=sk-secret%0D%0AX-Injected:%20yes");

        await ErrorTests.AssertErrorAsync(response, 400, "invalid_request_error", "invalid_header");
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("Authorization", message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-secret", message, StringComparison.Ordinal);
        Assert.False(echo.ReceivedAny, "the upstream must not be called");
    }

    // ---- Item 6: JSON Relay cannot re-serialise; unhandled exceptions ----

    /// <summary>What the client sends, and what the upstream must receive: the same bytes, but for <c>stream_options</c>.</summary>
    public static TheoryData<string, byte[], byte[]> UntouchedBodies()
    {
        var data = new TheoryData<string, byte[], byte[]>();

        // JSON.stringify of half an emoji: an unpaired surrogate escape, which has no UTF-8 form.
        Streaming("lone surrogate in content", """{"model":"mock","stream":true,"messages":[{"role":"user","content":"abc \ud83d"}]}""");
        Streaming("lone surrogate in model", """{"model":"m\udc00","stream":true,"messages":[{"role":"user","content":"hi"}]}""");
        Streaming("lone surrogate in a property name", """{"model":"mock","x\ud83d":1,"stream":true,"messages":[{"role":"user","content":"hi"}]}""");

        byte[] invalidModel = [.. "{\"model\":\"m"u8, 0xFF, 0xC3, .. "\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"u8];
        data.Add("invalid UTF-8 in model", invalidModel, [.. invalidModel[..^1], .. ",\"stream_options\":{\"include_usage\":true}}"u8]);
        byte[] invalidModelNoStream = [.. "{\"model\":\"m"u8, 0xFF, .. "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"u8];
        data.Add("invalid UTF-8 in model, not streaming", invalidModelNoStream, invalidModelNoStream);

        data.Add(
            "relay options removed, everything else kept",
            U("""{ "model" : "mock", "n": 1.50, "stream":true, "stream_options": {"include_usage": true, "chunk_size": 2, "x": "<\u00e9>"}, "messages":[{"role":"user","content":"abc \ud83d"}] }"""),
            U("""{ "model" : "mock", "n": 1.50, "stream":true, "stream_options": {"include_usage": true,"x": "<\u00e9>"}, "messages":[{"role":"user","content":"abc \ud83d"}] }"""));
        data.Add(
            "lone surrogate in a stream_options name",
            U("""{"model":"mock","stream":true,"stream_options":{"\ud83d":1,"chunk_size":2},"messages":[]}"""),
            U("""{"model":"mock","stream":true,"stream_options":{"\ud83d":1,"include_usage":true},"messages":[]}"""));
        return data;

        static byte[] U(string text) => Encoding.UTF8.GetBytes(text);

        // A streaming request gets include_usage (for Relay's accounting); everything else is as sent.
        void Streaming(string name, string body) => data.Add(name, U(body), U(body[..^1] + ",\"stream_options\":{\"include_usage\":true}}"));
    }

    [Theory]
    [MemberData(nameof(UntouchedBodies))]
    public async Task ChatBody_ThatRelayCannotReserialise_IsForwardedUntouched_ExceptForStreamOptions(string name, byte[] body, byte[] expected)
    {
        _ = name;
        await using var echo = RawHttpUpstream.Start(static _ => RawHttpUpstream.Response(200, "text/event-stream", SseReply));
        await using var relay = await InProcessRelay.StartAsync(echo.Url);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        using var response = await Client.PostAsync(relay.Url + "/v1/chat/completions", content);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(Encoding.Latin1.GetString(expected), Encoding.Latin1.GetString((await echo.NextRequestAsync()).Body));
        Assert.DoesNotContain(relay.Logs.GetSnapshot(), r => r.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task UnhandledException_IsLoggedAtErrorWithItsTypeAndStack_WithoutSecrets_AndAnswered500()
    {
        const string key = "sk-client-secret-97531";
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, services: static s => s.AddSingleton<ITicketStore, BrokenTicketStore>());
        using var request = SseRead.ChatRequest(relay.Url, path: "/relay/v1/tickets");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);

        using var response = await Client.SendAsync(request);

        await ErrorTests.AssertErrorAsync(response, 500, "server_error", "relay_error");
        // The exception handler logs once the response is written: wait for the record, not for a fixed time.
        using var timeout = new CancellationTokenSource(Deadline.Default);
        var logged = await relay.Logs.GetLogsAsync(timeout.Token).FirstAsync(static r => r.Level == LogLevel.Error, timeout.Token);
        Assert.Single(relay.Logs.GetSnapshot(), static r => r.Level == LogLevel.Error);
        var exception = Assert.IsType<InvalidOperationException>(logged.Exception);
        Assert.Contains(nameof(BrokenTicketStore), exception.StackTrace, StringComparison.Ordinal);
        AuthTests.AssertNotLogged(relay, key);
    }

    // ---- Item 7: upstream errors without a body ----

    [Theory]
    [InlineData("GET", "/v1/chat/completions", 405)]
    [InlineData("GET", "/v1/no/such/thing", 404)]
    [InlineData("POST", "/v1/no/such/thing", 404)]
    public async Task UpstreamErrorWithNoBody_GetsAnOpenAIErrorBody_KeepingItsStatusAndHeaders(string method, string path, int status)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), Relay.Url + path);
        using var response = await Client.SendAsync(request);

        await ErrorTests.AssertErrorAsync(response, status, "invalid_request_error", null);
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains($"{status}", message, StringComparison.Ordinal);
        Assert.Contains($"{method} {path}", message, StringComparison.Ordinal);
        if (status == 405)
        {
            Assert.Contains("POST", response.Content.Headers.Allow);
        }
    }

    [Theory]
    [InlineData("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 7\r\n", 503, "upstream_error")]
    [InlineData("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n", 404, "invalid_request_error")]
    public async Task UpstreamErrorWithNoBody_OfAnyFraming_GetsAnOpenAIErrorBody(string head, int status, string type)
    {
        var chunked = head.Contains("chunked", StringComparison.Ordinal);
        await using var raw = RawHttpUpstream.Start(_ => Encoding.ASCII.GetBytes(head + "Connection: close\r\n\r\n" + (chunked ? "0\r\n\r\n" : "")));
        await using var relay = await InProcessRelay.StartAsync(raw.Url);

        using var response = await Client.GetAsync(relay.Url + "/v1/models");

        await ErrorTests.AssertErrorAsync(response, status, type, status >= 500 ? "upstream_error" : null);
        if (status == 503)
        {
            Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        }
    }

    [Fact]
    public async Task UpstreamErrorWithABody_OfUnknownLength_IsPassedOnUnchanged()
    {
        await using var raw = RawHttpUpstream.Start(static _ => Encoding.ASCII.GetBytes(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nupstr\r\n8\r\neam says\r\n0\r\n\r\n"));
        await using var relay = await InProcessRelay.StartAsync(raw.Url);

        using var response = await Client.GetAsync(relay.Url + "/v1/models");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("upstream says", await response.Content.ReadAsStringAsync());
    }

    // ---- Item 8: slow uploads ----

    [Theory]
    [InlineData("/v1/chat/completions", "application/json")] // a body Relay reads itself
    [InlineData("/v1/audio/transcriptions", "multipart/form-data; boundary=b")] // a body YARP streams upstream
    public async Task SlowRequestBodyUpload_Gets408WithAnOpenAIError(string path, string contentType)
    {
        // Kestrel's minimum request body data rate, made short for the test (the default is 240 bytes/s after a 5 s
        // grace period): a client that sends 10 bytes of 100,000 and then nothing falls below it.
        await using var raw = RawHttpUpstream.Start(static _ => null);
        await using var relay = await InProcessRelay.StartAsync(raw.Url, services: static s => s.Configure<KestrelServerOptions>(
            static o => o.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 1000, gracePeriod: TimeSpan.FromSeconds(1.5))));
        var request = Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: relay\r\nContent-Type: {contentType}\r\nContent-Length: 100000\r\n\r\n{{\"model\":");

        var (head, body) = await ExchangeAsync(relay.Url, request);

        Assert.True(head.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), head + Encoding.UTF8.GetString(body));
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("timeout", error.GetProperty("type").GetString());
        Assert.Equal("request_body_timeout", error.GetProperty("code").GetString());
    }

    /// <summary>Sends raw request bytes and reads the response until the server closes or the body's length is read.</summary>
    private static async Task<(string Head, byte[] Body)> ExchangeAsync(string url, byte[] request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(url).Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request);
        var head = await CancellationTests.ReadHeadAsync(stream);
        var lengthLine = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        using var timeout = new CancellationTokenSource(Deadline.Default);
        if (lengthLine is not null)
        {
            var body = new byte[int.Parse(lengthLine.Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)];
            await stream.ReadExactlyAsync(body, timeout.Token);
            return (head, body);
        }

        using var rest = new MemoryStream();
        await stream.CopyToAsync(rest, timeout.Token);
        return (head, rest.ToArray());
    }

    /// <summary>A ticket store whose backend is down: every call throws.</summary>
    private sealed class BrokenTicketStore : ITicketStore
    {
        public ValueTask<bool> AddAsync(StreamTicket ticket, CancellationToken cancellationToken)
            => throw new InvalidOperationException("The ticket store is unavailable.");

        public ValueTask<TicketRedemption> RedeemAsync(string id, CancellationToken cancellationToken)
            => throw new InvalidOperationException("The ticket store is unavailable.");
    }
}

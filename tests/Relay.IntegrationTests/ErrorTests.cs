using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>Errors in the client's language, before and after the first byte; Relay keeps serving.</summary>
public sealed class ErrorTests(MockUpstreamFixture upstream) : RelayTestBase(upstream, new Dictionary<string, string?>
{
    ["Relay:Limits:MaxRequestBodyBytes"] = "65536",
    ["Relay:Timeouts:FirstTokenSeconds"] = "1",
})
{
    public static TheoryData<string, string, int, string> BadBodies => new()
    {
        { "{\"model\":\"mock\",", "application/json", 400, "invalid_json" },
        { "[1,2,3]", "application/json", 400, "invalid_json" },
        { "\"just a string\"", "application/json", 400, "invalid_json" },
        { "{\"model\":\"mock\"}", "text/plain", 415, "unsupported_media_type" },
        { "{\"model\":\"mock\",\"stream\":true,\"stream_options\":{\"chunk_size\":0}}", "application/json", 400, "invalid_value" },
        { "{\"model\":\"mock\",\"stream\":true,\"stream_options\":\"yes\"}", "application/json", 400, "invalid_value" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task BadRequestBody_GetsOpenAIError_AndRelayKeepsServing(string body, string contentType, int status, string code)
    {
        var response = await Client.PostAsync($"{Relay.Url}/v1/chat/completions", new StringContent(body, Encoding.UTF8, contentType));
        await AssertErrorAsync(response, status, "invalid_request_error", code);
        await AssertStreamWorksAsync();
    }

    [Fact]
    public async Task HugeBody_Gets413()
    {
        var big = "{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', 100_000) + "\"}]}";
        var response = await Client.PostAsync($"{Relay.Url}/v1/chat/completions", new StringContent(big, Encoding.UTF8, "application/json"));
        await AssertErrorAsync(response, 413, "invalid_request_error", "request_too_large");

        // Chunked (no Content-Length): the limit still holds while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{Relay.Url}/v1/chat/completions") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        await AssertErrorAsync(await Client.SendAsync(request), 413, "invalid_request_error", "request_too_large");
        await AssertStreamWorksAsync();
    }

    [Fact]
    public async Task HugeBody_413ComesBeforeTheUpload_TheRestIsDiscarded_AndTheConnectionServesTheNextRequest()
    {
        // The 413 is answered from the headers alone. The client then sends its 300 KB anyway (as clients that do not
        // wait for 100-continue do): Relay reads and discards it rather than closing with unread data, whose TCP
        // reset can destroy the 413 before the client reads it. Proof: the same connection serves a next request.
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(Relay.Url).Port);
        var stream = tcp.GetStream();
        var body = Encoding.UTF8.GetBytes("{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('x', 300_000) + "\"}]}");
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"));
        var head = await CancellationTests.ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 413", head);
        var length = int.Parse(head.Split("\r\n").Single(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)).Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await stream.ReadExactlyAsync(new byte[length]);
        await stream.WriteAsync(body);

        var probe = "{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nx-mock-ttft-ms: 0\r\nx-mock-max-tokens: 2\r\nContent-Length: {probe.Length}\r\n\r\n{probe}"));
        Assert.StartsWith("HTTP/1.1 200", await CancellationTests.ReadHeadAsync(stream));
    }

    [Fact]
    public async Task UnknownRoute_Gets404()
    {
        await AssertErrorAsync(await Client.GetAsync($"{Relay.Url}/nope/here"), 404, "invalid_request_error", "unknown_route");
    }

    [Fact]
    public async Task UpstreamRefused_Gets502()
    {
        var closedPort = FreePort.Next();
        await using var relay = await InProcessRelay.StartAsync($"http://127.0.0.1:{closedPort}");
        using var request = SseRead.ChatRequest(relay.Url);
        await AssertErrorAsync(await Client.SendAsync(request), 502, "upstream_error", "upstream_unreachable");
    }

    [Fact]
    public async Task UpstreamSilentBeforeHeaders_Gets504()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "5000" });
        await AssertErrorAsync(await Client.SendAsync(request), 504, "timeout", "first_token_timeout");
    }

    [Fact]
    public async Task UpstreamHttpError_PassesThroughWithItsStatus()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string> { ["x-mock-status"] = "429" });
        var response = await Client.SendAsync(request);
        Assert.Equal(429, (int)response.StatusCode);
        Assert.True(response.Headers.Contains("Retry-After"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.True(error.TryGetProperty("message", out _));
    }

    [Fact]
    public async Task UpstreamResetMidStream_EndsWithErrorEvent()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "50",
            ["x-mock-fail-after-tokens"] = "5", ["x-mock-fail-mode"] = "reset",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.Contains(events, e => e.Content.Length > 0);
        var last = events[^1];
        Assert.True(last.IsError, $"last event: {last.Data}");
        Assert.Equal("upstream_error", last.Json.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.IsDone);
        await AssertStreamWorksAsync();
    }

    [Fact]
    public async Task UpstreamErrorEvent_ReachesClient()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "50",
            ["x-mock-fail-after-tokens"] = "3", ["x-mock-fail-mode"] = "error-event",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsError);
        Assert.Single(events, e => e.IsError);
    }

    [Fact]
    public async Task UpstreamClosesMidEvent_EndsWithErrorEvent()
    {
        // A raw socket upstream that sends headers, one whole event, half an event, then closes.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var serve = Task.Run(async () =>
        {
            using var socket = await listener.AcceptTcpClientAsync();
            var stream = socket.GetStream();
            var buffer = new byte[65536];
            var read = 0;
            while (!Encoding.ASCII.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                read += await stream.ReadAsync(buffer.AsMemory(read));
            }

            var chunk = """{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}""";
            var payload = $"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {chunk}\n\ndata: {{\"id\":\"x\",\"cho";
            await stream.WriteAsync(Encoding.UTF8.GetBytes(payload));
            await stream.FlushAsync();
        });

        await using var relay = await InProcessRelay.StartAsync($"http://127.0.0.1:{port}");
        using var request = SseRead.ChatRequest(relay.Url);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = await SseRead.ReadAllAsync(response);
        await serve;
        Assert.Equal("Hello", string.Concat(events.Select(e => e.Content)));
        Assert.True(events[^1].IsError, events[^1].Data);
        Assert.Equal("upstream_truncated", events[^1].Json.GetProperty("error").GetProperty("code").GetString());
    }

    private async Task AssertStreamWorksAsync()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "5",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
    }

    internal static async Task AssertErrorAsync(HttpResponseMessage response, int status, string type, string? code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"expected {status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>Events reach the client as they are generated, with proxy-safe headers, over real sockets.</summary>
public sealed class StreamingPassThroughTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    [Fact]
    public async Task Stream_FirstEventArrives_LongBeforeUpstreamFinishes()
    {
        // 10 tokens/s, 30 tokens: the upstream needs about 3 s; the first token must not wait for it.
        using var request = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>
        {
            ["x-mock-tokens-per-second"] = "10", ["x-mock-max-tokens"] = "30", ["x-mock-ttft-ms"] = "0",
        });
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);

        var content = events.Where(e => e.Content.Length > 0).ToList();
        Assert.True(content.Count >= 2, "expected several content events");
        var lastEmitted = events.Where(e => !e.IsDone && !e.IsError).Max(e => e.Json.GetProperty("mock_emitted_us").GetInt64());
        // The first content event was in the client's hands while the upstream still had tokens to go (about 3 s of
        // them): an order of events, not a bound; a buffering proxy delivers it only after the last emission.
        Assert.True(content[0].ReceivedUs < lastEmitted,
            $"first content received {(content[0].ReceivedUs - lastEmitted) / 1000} ms after the last token was emitted");
        Assert.True(events[^1].IsDone);
    }

    [Fact]
    public async Task Stream_CarriesProxySafeHeaders()
    {
        using var request = SseRead.ChatRequest(Relay.Url, headers: Fast(5));
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no", Assert.Single(response.Headers.GetValues("X-Accel-Buffering")));
        Assert.True(response.Headers.CacheControl!.NoCache);
        Assert.True(response.Headers.CacheControl.NoTransform);
        Assert.Null(response.Content.Headers.ContentLength);
        Assert.Empty(response.Content.Headers.ContentEncoding);
        await SseRead.ReadAllAsync(response);
    }

    [Fact]
    public async Task NonStreamingJson_PassesThroughUnchanged()
    {
        // /v1/models is deterministic: byte-for-byte the same through Relay as direct.
        var direct = await Client.GetAsync($"{Upstream.Url}/v1/models");
        var relayed = await Client.GetAsync($"{Relay.Url}/v1/models");
        Assert.Equal(HttpStatusCode.OK, relayed.StatusCode);
        Assert.Equal(await direct.Content.ReadAsByteArrayAsync(), await relayed.Content.ReadAsByteArrayAsync());
        Assert.Equal("application/json", relayed.Content.Headers.ContentType?.MediaType);
        Assert.False(relayed.Headers.Contains("X-Accel-Buffering"));

        // A non-streaming completion keeps its body; with the same seed its content matches the direct one.
        using var a = SseRead.ChatRequest(Upstream.Url, stream: false, headers: Fast(12));
        using var b = SseRead.ChatRequest(Relay.Url, stream: false, headers: Fast(12));
        var directBody = JsonDocument.Parse(await (await Client.SendAsync(a)).Content.ReadAsStringAsync()).RootElement;
        var relayedResponse = await Client.SendAsync(b);
        var relayedBody = JsonDocument.Parse(await relayedResponse.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("chat.completion", relayedBody.GetProperty("object").GetString());
        Assert.Equal(Message(directBody), Message(relayedBody));
        Assert.True(relayedBody.TryGetProperty("usage", out _));
    }

    [Fact]
    public async Task AnyV1Path_IsForwarded()
    {
        var embeddings = await Client.PostAsync($"{Relay.Url}/v1/embeddings",
            new StringContent("""{"model":"mock","input":"hello"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, embeddings.StatusCode);
        Assert.Contains("embedding", await embeddings.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Http2_StreamsOverH2c()
    {
        await using var relay = await InProcessRelay.StartAsync(Upstream.Url, h2c: true);
        using var client = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var request = SseRead.ChatRequest(relay.H2cUrl!, headers: Fast(20));
        request.Version = HttpVersion.Version20;
        request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(new Version(2, 0), response.Version);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
        Assert.NotEmpty(string.Concat(events.Select(e => e.Content)));
    }

    [Fact]
    public async Task Secrets_NeverAppearInLogs()
    {
        const string secret = "sk-test-SECRET-0123456789abcdef";
        using var request = SseRead.ChatRequest(Relay.Url, headers: Fast(5));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        request.Headers.TryAddWithoutValidation("api-key", secret);
        using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await SseRead.ReadAllAsync(response);
        using var failing = SseRead.ChatRequest(Relay.Url, headers: new Dictionary<string, string>(Fast(5)) { ["x-mock-fail-after-tokens"] = "2", ["x-mock-fail-mode"] = "reset" });
        failing.Headers.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        using var failed = await Client.SendAsync(failing, HttpCompletionOption.ResponseHeadersRead);
        await SseRead.ReadAllAsync(failed);

        var logs = Relay.Logs.GetSnapshot();
        Assert.NotEmpty(logs);
        Assert.DoesNotContain(logs, l => (l.Message + l.Exception).Contains(secret, StringComparison.Ordinal));
    }

    private static Dictionary<string, string> Fast(int tokens) => new()
    {
        ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = tokens.ToString(), ["x-mock-seed"] = "7",
    };

    private static string Message(JsonElement completion)
        => completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
}

using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Relay.IntegrationTests;

/// <summary>When the client goes away, the upstream stops generating, over every transport.</summary>
public sealed class CancellationTests(MockUpstreamFixture upstream, ITestOutputHelper output) : IClassFixture<MockUpstreamFixture>
{
    private const int SlowTotalTokens = 200;

    private static Dictionary<string, string> Slow() => new()
    {
        ["x-mock-tokens-per-second"] = "20", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = SlowTotalTokens.ToString(),
    };

    // No draining of an unfinished HTTP/1.1 body on dispose: disposing closes the connection, as a browser does.
    private static HttpClient NoDrainClient() => new(new SocketsHttpHandler { MaxResponseDrainSize = 0 });

    [Fact]
    public async Task ClientDisconnectOverHttp11_AbortsTheUpstream_AndGenerationStops()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url);
        using var client = NoDrainClient();
        using var request = SseRead.ChatRequest(relay.Url, headers: Slow());
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("x-mock-request-id").Single();

        var abortUs = await ReadSomeThenDisposeAsync(response, 3);

        var record = await upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        AssertAborted(record, abortUs, output);
    }

    [Fact]
    public async Task ClientResetsOneOfThreeHttp2Streams_OnlyThatUpstreamIsAborted_SiblingsComplete()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, h2c: true);
        using var client = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = false })
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        var sibling = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "40", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "30" };
        using var cancelledRequest = SseRead.ChatRequest(relay.H2cUrl!, headers: Slow());
        using var siblingRequest1 = SseRead.ChatRequest(relay.H2cUrl!, headers: sibling);
        using var siblingRequest2 = SseRead.ChatRequest(relay.H2cUrl!, headers: sibling);
        foreach (var r in new[] { cancelledRequest, siblingRequest1, siblingRequest2 })
        {
            r.Version = HttpVersion.Version20;
            r.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        var responses = await Task.WhenAll(
            client.SendAsync(cancelledRequest, HttpCompletionOption.ResponseHeadersRead),
            client.SendAsync(siblingRequest1, HttpCompletionOption.ResponseHeadersRead),
            client.SendAsync(siblingRequest2, HttpCompletionOption.ResponseHeadersRead));
        Assert.All(responses, r => Assert.Equal(HttpVersion.Version20, r.Version));
        var ids = responses.Select(r => r.Headers.GetValues("x-mock-request-id").Single()).ToArray();

        var siblings = Task.WhenAll(SseRead.ReadAllAsync(responses[1]), SseRead.ReadAllAsync(responses[2]));

        // Cancelling the read and disposing the response resets that one stream (RST_STREAM), not the connection.
        using var cts = new CancellationTokenSource();
        long abortUs = 0;
        var content = 0;
        await SseRead.ReadAllAsync(responses[0], cts.Token, stopAfter: e =>
        {
            if (e.Content.Length > 0 && ++content >= 3)
            {
                abortUs = SseRead.NowUs();
                cts.Cancel();
                return true;
            }

            return false;
        });
        responses[0].Dispose();

        var record = await upstream.WaitForRecordAsync(ids[0], r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        AssertAborted(record, abortUs, output);

        foreach (var events in await siblings)
        {
            Assert.True(events[^1].IsDone, $"a sibling stream ended with: {events[^1].Data}");
            Assert.DoesNotContain(events, e => e.IsError);
        }

        foreach (var id in ids[1..])
        {
            var sib = await upstream.WaitForRecordAsync(id, MockUpstreamFixture.IsFinished);
            Assert.Equal("completed", sib.GetProperty("status").GetString());
        }
    }

    [NginxFact]
    public async Task ClientAbortThroughNginx_ReachesTheUpstream()
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url);
        await using var nginx = await NginxProcess.StartAsync(relay.Url, "proxy_buffering off;");
        using var client = NoDrainClient();
        using var request = SseRead.ChatRequest(nginx.Url, headers: Slow());
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var id = response.Headers.GetValues("x-mock-request-id").Single();

        var abortUs = await ReadSomeThenDisposeAsync(response, 3);

        var record = await upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r));
        // nginx notices the closed client socket on its next write (one token interval at 20 tokens/s).
        AssertAborted(record, abortUs, output);
    }

    [Fact]
    public async Task StalledReader_IsCutAfterWriteStallTimeout_AndBackpressureStopsTheUpstreamEarly()
    {
        // Paced (5000 tokens/s), so the kernel's socket buffers on the way (which autotune to megabytes on
        // loopback) cannot swallow the whole stream before the stall is noticed.
        const int total = 200_000;
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Timeouts:WriteStallSeconds"] = "1",
        });

        using var tcp = new TcpClient { ReceiveBufferSize = 4096 };
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(relay.Url).Port);
        var stream = tcp.GetStream();
        var body = """{"model":"mock","messages":[{"role":"user","content":"Say something."}],"stream":true}""";
        var head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n"
            + $"x-mock-tokens-per-second: 5000\r\nx-mock-ttft-ms: 0\r\nx-mock-max-tokens: {total}\r\n\r\n";
        await stream.WriteAsync(Encoding.UTF8.GetBytes(head + body));

        // Read the response head only (byte by byte, so no body is consumed beyond it), then never read again.
        var headers = await ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 200", headers);
        var id = headers.Split("\r\n").Single(l => l.StartsWith("x-mock-request-id:", StringComparison.OrdinalIgnoreCase)).Split(':', 2)[1].Trim();

        var record = await upstream.WaitForRecordAsync(id, r => MockUpstreamFixture.IsAborted(r) && MockUpstreamFixture.IsFinished(r), TimeSpan.FromSeconds(35), poll: TimeSpan.FromMilliseconds(250));
        var atAbort = record.GetProperty("tokens_at_abort").GetInt32();
        Assert.True(atAbort < total, $"the upstream generated all {total} tokens for a client that read nothing: nothing pushed back");
        Assert.Equal(atAbort, record.GetProperty("tokens_generated").GetInt32());
    }

    /// <summary>Reads the response head byte by byte (nothing of the body); gives up after <see cref="Deadline.Default"/>, or when <paramref name="cancellationToken"/> says, when there is one.</summary>
    internal static async Task<string> ReadHeadAsync(NetworkStream stream, CancellationToken? cancellationToken = null)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        using var timeout = cancellationToken is null ? new CancellationTokenSource(Deadline.Default) : null;
        var token = cancellationToken ?? timeout!.Token;
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one, token) == 0)
            {
                throw new IOException($"connection closed before the response head ended: {head}");
            }

            head.Append((char)one[0]);
        }

        return head.ToString();
    }

    /// <summary>Reads <paramref name="contentEvents"/> content events, then disposes the response; returns the time just before.</summary>
    internal static async Task<long> ReadSomeThenDisposeAsync(HttpResponseMessage response, int contentEvents)
    {
        long abortUs = 0;
        var seen = 0;
        var events = await SseRead.ReadAllAsync(response, stopAfter: e =>
        {
            if (e.Content.Length > 0 && ++seen >= contentEvents)
            {
                abortUs = SseRead.NowUs();
                return true;
            }

            return false;
        });
        response.Dispose();
        Assert.True(abortUs != 0, $"the stream ended before {contentEvents} content events: {string.Join(" | ", events.Select(e => e.Data))}");
        return abortUs;
    }

    /// <summary>
    /// The upstream saw the client go away and stopped generating before the end of its reply: the abort came before
    /// the token it would have emitted next (it generated no more after it). How long the abort took to arrive is a
    /// latency figure (the benchmark's): written to the test output, not asserted.
    /// </summary>
    internal static void AssertAborted(JsonElement record, long clientAbortUs, ITestOutputHelper? output = null)
    {
        var abortedUs = record.GetProperty("aborted_us").GetInt64();
        output?.WriteLine($"the upstream saw the abort {(abortedUs - clientAbortUs) / 1000.0:F1} ms after the client went away");
        var atAbort = record.GetProperty("tokens_at_abort").GetInt32();
        Assert.True(atAbort < SlowTotalTokens, $"tokens_at_abort {atAbort}: {record}");
        Assert.Equal(atAbort, record.GetProperty("tokens_generated").GetInt32());
        Assert.Equal("aborted", record.GetProperty("status").GetString());
        Assert.True(abortedUs >= clientAbortUs, $"the abort was seen before the client went away: {record}");
    }
}

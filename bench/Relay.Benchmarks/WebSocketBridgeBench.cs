using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Relay.Benchmarks;

/// <summary>
/// WebSocket bridge figures over real loopback sockets (a console mode, not BenchmarkDotNet: these are end-to-end
/// latencies and throughput of a running Relay, not microbenchmarks). Relay and the simulated upstream run in this
/// process, the client too.
/// <list type="bullet">
/// <item><c>ws-cutover [count] [ttftMs]</c>: append sent -> first token of the new response, minus the upstream's
/// configured time to first token; p50/p99 over many cut-overs.</item>
/// <item><c>ws-frames [seconds] [sockets]</c>: frames/s with every token its own frame (chunk_size 1), per CPU-second
/// of the whole process (Relay, upstream and client together, so a lower bound for Relay alone).</item>
/// </list>
/// </summary>
public static class WebSocketBridgeBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        await using var upstream = await MockInference.MockInferenceServer.StartAsync("http://127.0.0.1:0");
        var upstreamUrl = Addresses(upstream).First();
        await using var relay = await Relay.RelayApp.BuildAsync(["--urls", "http://127.0.0.1:0", "--Relay:Upstream:BaseUrl", upstreamUrl], b =>
        {
            b.Logging.ClearProviders();
        });
        await relay.StartAsync();
        var url = "ws" + Addresses(relay).First()["http".Length..] + "/v1/chat/ws";
        return args[0] switch
        {
            "ws-cutover" => await CutOverAsync(url, Arg(args, 1, 300), Arg(args, 2, 50)),
            _ => await FramesAsync(url, Arg(args, 1, 10), Arg(args, 2, 4)),
        };
    }

    private static async Task<int> CutOverAsync(string url, int count, int ttftMs)
    {
        using var socket = await ConnectAsync(url, new() { ["x-mock-tokens-per-second"] = "50", ["x-mock-ttft-ms"] = ttftMs.ToString(), ["x-mock-max-tokens"] = "500" });
        var overheads = new List<double>();
        for (var i = 0; i < count + 10; i++)
        {
            await SendAsync(socket, new { type = "response.create", response = new { model = "mock", messages = new[] { new { role = "user", content = "Tell me a story." } } } });
            var first = await UntilAsync(socket, m => IsContent(m));
            var id = first.GetProperty("response_id").GetString();
            var sent = Stopwatch.GetTimestamp();
            await SendAsync(socket, new { type = "conversation.item.create", item = new { role = "user", content = "Something else." } });
            await UntilAsync(socket, m => IsContent(m) && m.GetProperty("response_id").GetString() != id);
            var latency = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            if (i >= 10)
            {
                // The first ones warm up the JIT and the connection pool.
                overheads.Add(latency - ttftMs);
            }

            await SendAsync(socket, new { type = "response.cancel" });
            await UntilAsync(socket, m => m.GetProperty("type").GetString() == "response.done");
        }

        overheads.Sort();
        Console.WriteLine($"cut-over latency minus upstream TTFT ({ttftMs} ms), {overheads.Count} cut-overs: "
            + $"p50 {Percentile(overheads, 0.50):F2} ms, p99 {Percentile(overheads, 0.99):F2} ms, max {overheads[^1]:F2} ms");
        return 0;
    }

    private static async Task<int> FramesAsync(string url, int seconds, int sockets)
    {
        var headers = new Dictionary<string, string> { ["x-mock-tokens-per-second"] = "0", ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "2000" };
        var stop = Stopwatch.StartNew();
        var frames = 0L;
        var process = Process.GetCurrentProcess();
        var warm = RunSocketsAsync(url, headers, sockets, TimeSpan.FromSeconds(2), _ => { });
        await warm;
        process.Refresh();
        var cpu0 = process.TotalProcessorTime;
        stop.Restart();
        await RunSocketsAsync(url, headers, sockets, TimeSpan.FromSeconds(seconds), n => Interlocked.Add(ref frames, n));
        var elapsed = stop.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpu0).TotalSeconds;
        Console.WriteLine($"{sockets} sockets, {elapsed:F1} s: {frames / elapsed:F0} frames/s, {cpu / elapsed:F2} cores busy, "
            + $"{frames / cpu:F0} frames per CPU-second (Relay + upstream + client in one process)");
        return 0;
    }

    private static Task RunSocketsAsync(string url, Dictionary<string, string> headers, int sockets, TimeSpan duration, Action<long> count)
        => Task.WhenAll(Enumerable.Range(0, sockets).Select(async _ =>
        {
            using var socket = await ConnectAsync(url, headers);
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < duration)
            {
                await SendAsync(socket, new
                {
                    type = "response.create",
                    response = new { model = "mock", messages = new[] { new { role = "user", content = "Go." } }, stream_options = new { chunk_size = 1 } },
                });
                long n = 0;
                string? last = null;
                var receive = UntilAsync(socket, m =>
                {
                    n++;
                    last = m.GetRawText();
                    return m.GetProperty("type").GetString() == "response.done";
                });
                if (await Task.WhenAny(receive, Task.Delay(TimeSpan.FromSeconds(10))) != receive)
                {
                    Console.WriteLine($"STALL after {n} frames; last: {last?[..Math.Min(300, last.Length)]}");
                }

                await receive;
                count(n);
            }
        }));

    private static bool IsContent(JsonElement m)
        => m.GetProperty("type").GetString() == "response.chunk"
            && m.GetProperty("chunk").GetProperty("choices") is { ValueKind: JsonValueKind.Array } c && c.GetArrayLength() > 0
            && c[0].GetProperty("delta").TryGetProperty("content", out var t) && t.GetString() is { Length: > 0 };

    private static async Task<ClientWebSocket> ConnectAsync(string url, Dictionary<string, string> headers)
    {
        var socket = new ClientWebSocket();
        foreach (var (k, v) in headers)
        {
            socket.Options.SetRequestHeader(k, v);
        }

        await socket.ConnectAsync(new Uri(url), CancellationToken.None);
        return socket;
    }

    private static Task SendAsync(ClientWebSocket socket, object message)
        => socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message), WebSocketMessageType.Text, true, CancellationToken.None);

    private static async Task<JsonElement> UntilAsync(ClientWebSocket socket, Func<JsonElement, bool> until)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                result = await socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                length += result.Count;
            }
            while (!result.EndOfMessage);

            var message = JsonDocument.Parse(buffer.AsMemory(0, length)).RootElement;
            if (until(message))
            {
                return message;
            }
        }
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static int Arg(string[] args, int index, int fallback) => args.Length > index && int.TryParse(args[index], out var v) ? v : fallback;

    private static IEnumerable<string> Addresses(WebApplication app)
        => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
}

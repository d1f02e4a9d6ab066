using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Relay.Benchmarks;

/// <summary>
/// <c>compression [streams] [tokens]</c>: bytes on the wire and CPU per token of the mock's chat stream through Relay
/// with <c>Compression:Enabled</c>, for identity, gzip and Brotli (fastest levels), with every token its own flush
/// (<c>chunk_size</c> 1, the worst case for a compressor) and with Relay's default cadence. CPU is the whole
/// process's (Relay, upstream and client together), so the difference between encodings is what compression costs.
/// </summary>
public static class CompressionBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var streams = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200;
        var tokens = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 200;
        await using var upstream = await MockInference.MockInferenceServer.StartAsync("http://127.0.0.1:0");
        var upstreamUrl = Addresses(upstream).First();
        await using var relay = await Relay.RelayApp.BuildAsync(
            ["--urls", "http://127.0.0.1:0", "--Relay:Upstream:BaseUrl", upstreamUrl, "--Relay:Compression:Enabled", "true"],
            static b => b.Logging.ClearProviders());
        await relay.StartAsync();
        var url = Addresses(relay).First() + "/v1/chat/completions";
        using var client = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None });

        Console.WriteLine($"{streams} streams x {tokens} tokens each; whole-process CPU");
        Console.WriteLine("| flushes | encoding | bytes/token | CPU µs/token |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var chunk in new[] { "1", "default" })
        {
            foreach (var encoding in new[] { "identity", "gzip", "br" })
            {
                await RunAsync(client, url, encoding, chunk, 10, tokens); // warm-up
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                var bytes = await RunAsync(client, url, encoding, chunk, streams, tokens);
                var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
                var total = (double)streams * tokens;
                Console.WriteLine($"| {(chunk == "1" ? "every token" : "cadence (8 tokens / 20 ms)")} | {encoding} | {bytes / total:F1} | {used.TotalMicroseconds / total:F1} |");
            }
        }

        return 0;
    }

    private static async Task<long> RunAsync(HttpClient client, string url, string encoding, string chunk, int streams, int tokens)
    {
        var options = chunk == "1" ? ",\"stream_options\":{\"chunk_size\":1}" : "";
        var body = $"{{\"model\":\"mock\",\"stream\":true,\"max_tokens\":{tokens},\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]{options}}}";
        long bytes = 0;
        var buffer = new byte[16384];
        for (var i = 0; i < streams; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.TryAddWithoutValidation("Accept-Encoding", encoding);
            request.Headers.TryAddWithoutValidation("x-mock-tokens-per-second", "0");
            request.Headers.TryAddWithoutValidation("x-mock-ttft-ms", "0");
            request.Headers.TryAddWithoutValidation("x-mock-seed", i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            await using var stream = await response.Content.ReadAsStreamAsync();
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0)
            {
                bytes += n;
            }
        }

        return bytes;
    }

    private static IEnumerable<string> Addresses(WebApplication app)
        => app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
}

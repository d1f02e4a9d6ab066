using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.State;

/// <summary>
/// The setup for outlasting an edge's duration cap: one redis-server, one Relay with resumable streams (and,
/// when given, <c>Resume:MaxResponseSeconds</c>), and in front of it an <see cref="EdgeCapForwarder"/> that cuts every
/// response still in flight 5 s after its request began. A 12 s generation (600 tokens at 50 per second) needs several
/// responses.
/// </summary>
internal sealed class CappedEdgeStack : IAsyncDisposable
{
    public const int Seed = 51;
    public const int MaxTokens = 600;
    public const int TokensPerSecond = 50;
    public static readonly TimeSpan EdgeCap = TimeSpan.FromSeconds(5);

    private CappedEdgeStack(RedisProcess redis, InProcessRelay relay, EdgeCapForwarder edge, ConcurrentQueue<StreamUsageRecord> usage)
    {
        Usage = usage;
        Redis = redis;
        Relay = relay;
        Edge = edge;
    }

    public RedisProcess Redis { get; }

    public InProcessRelay Relay { get; }

    public EdgeCapForwarder Edge { get; }

    /// <summary>Relay's usage records: one per stream it relayed from the upstream.</summary>
    public ConcurrentQueue<StreamUsageRecord> Usage { get; }

    /// <summary>The key the mock counts this stack's requests by.</summary>
    public string CountKey { get; } = "caps-" + Guid.NewGuid().ToString("N");

    /// <summary>The node scripts' arguments after their mode and URL: key, seed, max tokens, tokens per second, count key.</summary>
    public string[] ScriptArguments => [AuthTests.ClientKey, Seed.ToString(CultureInfo.InvariantCulture), MaxTokens.ToString(CultureInfo.InvariantCulture),
        TokensPerSecond.ToString(CultureInfo.InvariantCulture), CountKey];

    /// <summary>Starts the stack; <paramref name="maxResponseSeconds"/> 0 leaves Relay without a cap.</summary>
    public static async Task<CappedEdgeStack> StartAsync(string upstreamUrl, double maxResponseSeconds)
    {
        var redis = await RedisProcess.StartAsync();
        var settings = ResponseCapTests.CappedSettings(redis, maxResponseSeconds, detachedSeconds: 30);
        settings["Relay:Playground:Enabled"] = "true"; // A page on Relay's origin.
        var usage = new ConcurrentQueue<StreamUsageRecord>();
        var relay = await InProcessRelay.StartAsync(upstreamUrl, settings, services: s => s.AddSingleton<IStreamUsageSink>(new QueueSink(usage)));
        return new CappedEdgeStack(redis, relay, EdgeCapForwarder.Start(relay.Url, EdgeCap), usage);
    }

    /// <summary>The text MockInference generates for the stack's seed, uncut, read straight from it.</summary>
    public static async Task<string> UncutTextAsync(string upstreamUrl)
    {
        using var client = new HttpClient();
        return await ResumeClient.MockTextAsync(client, upstreamUrl, new Dictionary<string, string>
        {
            ["x-mock-seed"] = Seed.ToString(CultureInfo.InvariantCulture),
            ["x-mock-max-tokens"] = MaxTokens.ToString(CultureInfo.InvariantCulture),
            ["x-mock-ttft-ms"] = "0",
        });
    }

    /// <summary>Runs a node script of <paramref name="folder"/> and returns the JSON of its last line of output.</summary>
    public static async Task<JsonElement> RunNodeAsync(string folder, string script, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var (exitCode, stdout, stderr) = await NodeScript.RunAsync(folder, script, args, TimeSpan.FromSeconds(180), environment);
        Assert.True(exitCode == 0 && stdout.Trim().Length > 0, $"node {script} exited {exitCode}:\n{stdout}\n{stderr}");
        return JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
    }

    public async ValueTask DisposeAsync()
    {
        await Edge.DisposeAsync();
        await Relay.DisposeAsync();
        await Redis.DisposeAsync();
    }
}

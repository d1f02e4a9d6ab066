using System.Diagnostics;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests.State;

/// <summary>A real browser's EventSource on a resumable stream survives a dropped connection.</summary>
public sealed class ResumeBrowserTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    [RedisNginxBrowserFact]
    public async Task EventSource_ConnectionKilledMidStream_ReconnectsByItself_AndThePageEndsWithTheFullTextExactlyOnce()
    {
        await using var redis = await RedisProcess.StartAsync();
        var settings = ResumableStreamTests.ResumeSettings(redis);
        settings["Relay:Playground:Enabled"] = "true"; // A page on Relay's origin to run the script in.
        await using var a = await InProcessRelay.StartAsync(upstream.Url, settings);
        await using var b = await InProcessRelay.StartAsync(upstream.Url, settings);
        await using var nginx = await NginxProcess.StartAsync([a.Url, b.Url], "proxy_buffering off;");

        var info = new ProcessStartInfo(NodeScript.Node!) { WorkingDirectory = BrowserDriver.Directory!, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "resume.mjs", nginx.Url, AuthTests.ClientKey, "41", "600", "50" })
        {
            info.ArgumentList.Add(arg);
        }

        using var node = Process.Start(info)!;
        var stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            var output = node.StandardOutput.ReadToEndAsync(timeout.Token);
            await WaitUntilStreamedAsync(redis, events: 20, timeout.Token);
            await nginx.RestartAsync(); // Every connection through nginx drops, the page's EventSource with it.
            var lines = (await output).Trim();
            Assert.True(lines.Length > 0, "the page did not finish: " + await stderr);
            var result = JsonDocument.Parse(lines.Split('\n')[^1]).RootElement;
            await node.WaitForExitAsync(timeout.Token);

            Assert.True(result.GetProperty("errors").GetInt32() >= 1, $"the connection never broke {result}");
            var ids = result.GetProperty("ids").EnumerateArray().Select(static i => long.Parse(i.GetString()![(i.GetString()!.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(Enumerable.Range(1, ids.Count).Select(static i => (long)i), ids); // Each event once, in order.
            var knobs = new Dictionary<string, string> { ["x-mock-seed"] = "41", ["x-mock-max-tokens"] = "600", ["x-mock-ttft-ms"] = "0" };
            using var client = new HttpClient();
            Assert.Equal(await ResumeClient.MockTextAsync(client, upstream.Url, knobs), result.GetProperty("text").GetString());
        }
        finally
        {
            if (!node.HasExited)
            {
                node.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>Waits until the page's stream has this many events in Redis: mid-stream, observed, not timed.</summary>
    private static async Task WaitUntilStreamedAsync(RedisProcess redis, int events, CancellationToken cancellationToken)
    {
        await using var connection = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        while (true)
        {
            foreach (var key in server.Keys(pattern: "relay:resume:*:events"))
            {
                if (await connection.GetDatabase().StreamLengthAsync(key) >= events)
                {
                    return;
                }
            }

            await Task.Delay(20, cancellationToken);
        }
    }
}

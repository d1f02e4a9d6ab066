using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Accounting;

namespace Relay.IntegrationTests.State;

/// <summary>
/// As a user runs it: two Relay instances (real Kestrel sockets), one redis-server, nginx balancing
/// round-robin in front, MockInference behind.
/// </summary>
public sealed class ScaleOutTests(MockUpstreamFixture upstream) : IClassFixture<MockUpstreamFixture>
{
    private readonly HttpClient _client = new();

    [RedisAndNginxFact]
    public async Task BehindNginxRoundRobin_ATicketIssuedOnOneInstance_IsRedeemedOnTheOther_AndACutStreamResumesOnTheOther()
    {
        await using var redis = await RedisProcess.StartAsync();
        var usageA = new ConcurrentQueue<StreamUsageRecord>();
        var usageB = new ConcurrentQueue<StreamUsageRecord>();
        await using var a = await StartAsync(redis, usageA);
        await using var b = await StartAsync(redis, usageB);
        await using var nginx = await NginxProcess.StartAsync([a.Url, b.Url], "proxy_buffering off;");

        // The ticket: issued by one instance, its stream served by the other.
        using var issue = new HttpRequestMessage(HttpMethod.Post, nginx.Url + "/relay/v1/tickets")
        {
            Content = JsonContent.Create(new { model = "mock", stream = true, messages = new[] { new { role = "user", content = "Hi" } } }),
        };
        issue.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        issue.Headers.TryAddWithoutValidation("x-mock-max-tokens", "12");
        using var issued = await _client.SendAsync(issue);
        Assert.True(issued.IsSuccessStatusCode, await issued.Content.ReadAsStringAsync());
        var issuer = await ServedByAsync(a, b, "TicketIssued") == 'A' ? a : b;
        var url = JsonDocument.Parse(await issued.Content.ReadAsStringAsync()).RootElement.GetProperty("url").GetString()!;
        using (var redeemed = await _client.GetAsync(nginx.Url + url, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, redeemed.StatusCode);
            Assert.True((await ResumeClient.ReadAsync(redeemed))[^1].IsDone);
        }

        var redeemer = await WaitForUsageAsync(usageA, usageB);
        Assert.NotSame(issuer, redeemer == 'A' ? a : b);

        // A resumable stream cut mid-way, resumed through nginx on the other instance: the mock's text, exactly.
        var (recordsA, recordsB) = (usageA.Count, usageB.Count);
        var knobs = new Dictionary<string, string> { ["x-mock-seed"] = "31", ["x-mock-max-tokens"] = "80", ["x-mock-tokens-per-second"] = "50", ["x-mock-ttft-ms"] = "0" };
        var response = await _client.SendAsync(ResumeClient.Start(nginx.Url, knobs), HttpCompletionOption.ResponseHeadersRead);
        var streamId = response.Headers.GetValues("Relay-Stream-Id").Single();
        var before = await ResumeClient.ReadAsync(response, take: 5);
        response.Dispose();
        using var resumed = await _client.SendAsync(ResumeClient.Resume(nginx.Url, streamId, before[^1].Id), HttpCompletionOption.ResponseHeadersRead);
        var after = await ResumeClient.ReadAsync(resumed);
        Assert.True(after[^1].IsDone);
        Assert.Equal(await DirectTextAsync(knobs), ResumeClient.Text(before) + ResumeClient.Text(after));
        Assert.Equal(Enumerable.Range(1, before.Count + after.Count).Select(i => (long)i), before.Concat(after).Select(e => e.Sequence));

        // The instance that relayed the stream recorded its usage; the other served the resume.
        var producer = await WaitForUsageAsync(usageA, usageB, skipA: recordsA, skipB: recordsB);
        var resumer = await ServedByAsync(a, b, "ResumableStreamResumed");
        Assert.True(resumer != producer, $"the resume was not served by the other instance: A {Events(a)}; B {Events(b)}");
    }

    private Task<InProcessRelay> StartAsync(RedisProcess redis, ConcurrentQueue<StreamUsageRecord> usage)
    {
        var settings = ResumableStreamTests.ResumeSettings(redis);
        settings["Logging:LogLevel:Relay"] = "Debug"; // Which instance served what, from its Debug events.
        return InProcessRelay.StartAsync(upstream.Url, settings, services: s => s.AddSingleton<IStreamUsageSink>(new QueueSink(usage)));
    }

    /// <summary>Which instance logged <paramref name="eventName"/>: waits for the record (it may come after the response).</summary>
    private static async Task<char> ServedByAsync(InProcessRelay a, InProcessRelay b, string eventName)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var onA = a.Logs.GetSnapshot().Any(r => r.Id.Name == eventName);
            var onB = b.Logs.GetSnapshot().Any(r => r.Id.Name == eventName);
            Assert.False(onA && onB, $"both instances logged {eventName}");
            if (onA || onB)
            {
                return onA ? 'A' : 'B';
            }

            Assert.True(clock.Elapsed < Deadline.Default, $"neither instance logged {eventName}: A {Events(a)}; B {Events(b)}");
            await Task.Delay(10); // A bounded poll of the two instances' logs.
        }
    }

    private static string Events(InProcessRelay relay) => string.Join(",", relay.Logs.GetSnapshot().Where(static r => r.Id.Id >= 1500 || r.Id.Name == "TicketIssued").Select(static r => r.Id.Name));

    /// <summary>Which instance recorded the next stream's usage (past the records it held before).</summary>
    private static async Task<char> WaitForUsageAsync(ConcurrentQueue<StreamUsageRecord> a, ConcurrentQueue<StreamUsageRecord> b, int skipA = 0, int skipB = 0)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (a.Count == skipA && b.Count == skipB)
        {
            Assert.True(clock.Elapsed < Deadline.Default, "no usage record");
            await Task.Delay(10);
        }

        return a.Count > skipA ? 'A' : 'B';
    }

    private Task<string> DirectTextAsync(Dictionary<string, string> knobs) => ResumeClient.MockTextAsync(_client, upstream.Url, knobs);
}

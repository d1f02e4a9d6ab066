using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Relay.IntegrationTests.Infrastructure;
using StackExchange.Redis;

namespace Relay.IntegrationTests.State;

/// <summary>Tickets shared by instances through a real redis-server, sealed at rest, and what happens when Redis goes away.</summary>
public sealed class RedisTicketTests(MockUpstreamFixture upstream, SharedRelays shared) : IClassFixture<MockUpstreamFixture>, IClassFixture<SharedRelays>
{
    private const string StoryPrompt = "A secret plot about lighthouses.";
    private readonly HttpClient _client = new();

    [RedisFact]
    public async Task Ticket_IssuedThroughOneInstance_IsRedeemedThroughAnother_OnceOnly()
    {
        var (a, b) = await SharedAsync();

        var url = await IssueAsync(a);
        using (var response = await _client.GetAsync(b.Url + url, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
            var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
            Assert.Contains(StoryPrompt, record.GetProperty("request_body").GetString());
            Assert.Equal("Bearer " + AuthTests.UpstreamKey, record.GetProperty("authorization").GetString());
        }

        await ErrorTests.AssertErrorAsync(await _client.GetAsync(a.Url + url), 410, "invalid_request_error", "ticket_used");
        await ErrorTests.AssertErrorAsync(await _client.GetAsync(b.Url + url), 410, "invalid_request_error", "ticket_used");
    }

    [Fact]
    public async Task Control_InMemoryTickets_AnotherInstanceDoesNotKnowTheTicket()
    {
        await using var a = await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis: null));
        await using var b = await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis: null));
        var url = await IssueAsync(a);
        await ErrorTests.AssertErrorAsync(await _client.GetAsync(b.Url + url), 401, "authentication_error", "invalid_ticket");
    }

    [RedisFact]
    public async Task OneTicket_PresentedToTwoInstancesAtOnce_StartsOneStream()
    {
        var (a, b) = await SharedAsync();
        for (var round = 0; round < 20; round++)
        {
            var url = await IssueAsync(a);
            var both = await Task.WhenAll(
                _client.GetAsync(a.Url + url, HttpCompletionOption.ResponseHeadersRead),
                _client.GetAsync(b.Url + url, HttpCompletionOption.ResponseHeadersRead));
            Assert.Equal(1, both.Count(r => r.StatusCode == HttpStatusCode.OK));
            Assert.Equal(1, both.Count(r => r.StatusCode == HttpStatusCode.Gone));
            foreach (var response in both)
            {
                response.Dispose();
            }
        }
    }

    [RedisFact]
    public async Task TicketInRedis_IsSealed_NeitherCredentialNorBodyInClear_AndExpiresByTtl()
    {
        var (a, _) = await SharedAsync();
        await using var connection = await ConnectionMultiplexer.ConnectAsync(shared.Redis.ConnectionString);
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var before = server.Keys(pattern: "relay:ticket:*").ToList(); // The class's other tests' tickets, if any are left.
        await IssueAsync(a);

        var key = Assert.Single(server.Keys(pattern: "relay:ticket:*").Except(before).ToList());
        var value = (byte[])(await connection.GetDatabase().StringGetAsync(key))!;
        var text = Encoding.Latin1.GetString(value);
        Assert.DoesNotContain(AuthTests.ClientKey, text);
        Assert.DoesNotContain(AuthTests.UpstreamKey, text);
        Assert.DoesNotContain("lighthouses", text);
        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(StoryPrompt))[..16], text);
        var ttl = await connection.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.InRange(ttl!.Value.TotalSeconds, 50, 60); // Tickets:LifetimeSeconds, enforced by Redis.
    }

    [Fact]
    public async Task RedisWithoutAnEncryptionKey_FailsAtStartUp_WithOneClearLine()
    {
        var settings = SharedStateSettings.For("127.0.0.1:1");
        settings.Remove("Relay:Tickets:EncryptionKey");
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessRelay.StartAsync(upstream.Url, settings));
        var line = Assert.Single(error.Failures);
        Assert.StartsWith("Relay:State:Redis is set but Relay:Tickets:EncryptionKey is not", line);
        Assert.DoesNotContain('\n', line);

        // Control: with the key the same settings pass validation (Redis at port 1 is down: the instance starts anyway).
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For("127.0.0.1:1,connectTimeout=200"));
    }

    [Fact]
    public async Task ResumeEnabledWithoutRedis_FailsAtStartUp_WithOneClearLine()
    {
        var settings = SharedStateSettings.For(redis: null);
        settings["Relay:Resume:Enabled"] = "true";
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessRelay.StartAsync(upstream.Url, settings));
        Assert.StartsWith("Relay:Resume:Enabled needs Relay:State:Redis", Assert.Single(error.Failures));
    }

    [RedisFact]
    public async Task RedisStopped_TicketsGet503StateStoreUnavailable_WithRetryAfter_PlainStreamsGoOn_ThenRedisBack_TicketsWorkAgain()
    {
        await using var redis = await RedisProcess.StartAsync();
        await using var a = await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis.ConnectionString));
        await using var b = await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis.ConnectionString));
        var issuedBefore = await IssueAsync(a);

        await redis.StopAsync();
        using (var issue = await _client.SendAsync(IssueRequest(a)))
        {
            Assert.Equal("2", issue.Headers.GetValues("Retry-After").Single());
            await ErrorTests.AssertErrorAsync(issue, 503, "server_error", "state_store_unavailable");
        }

        using (var redeem = await _client.GetAsync(b.Url + issuedBefore))
        {
            Assert.Equal("2", redeem.Headers.GetValues("Retry-After").Single());
            await ErrorTests.AssertErrorAsync(redeem, 503, "server_error", "state_store_unavailable");
        }

        // A plain streaming request does not need Redis.
        using (var plain = await _client.SendAsync(SseRead.ChatRequest(a.Url, headers: new Dictionary<string, string> { ["Authorization"] = "Bearer " + AuthTests.ClientKey, ["x-mock-max-tokens"] = "5" }), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.True(plain.StatusCode == HttpStatusCode.OK, await plain.Content.ReadAsStringAsync());
            Assert.True((await SseRead.ReadAllAsync(plain))[^1].IsDone);
        }

        // Redis back (empty: the ticket issued before is gone, as after any restart without persistence); the instances reconnect by themselves.
        await redis.StartAgainAsync();
        await WaitUntilIssuedAsync(b);
        var url = await WaitUntilIssuedAsync(a);
        using var response = await _client.GetAsync(b.Url + url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await SseRead.ReadAllAsync(response))[^1].IsDone);
    }

    /// <summary>Redis and two instances on it, shared by the class's tests that keep Redis up (one that stops it has its own).</summary>
    private async Task<(InProcessRelay A, InProcessRelay B)> SharedAsync()
    {
        await shared.StartOnceAsync(async redis => (
            await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis.ConnectionString)),
            await InProcessRelay.StartAsync(upstream.Url, SharedStateSettings.For(redis.ConnectionString))));
        return (shared.A, shared.B);
    }

    /// <summary>Issues until an instance has reconnected: a bounded poll of observed state, not a sleep.</summary>
    private async Task<string> WaitUntilIssuedAsync(InProcessRelay relay)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var response = await _client.SendAsync(IssueRequest(relay));
            if (response.IsSuccessStatusCode)
            {
                return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("url").GetString()!;
            }

            Assert.True(clock.Elapsed < Deadline.Default, $"no reconnect to Redis in {Deadline.Default}: {(int)response.StatusCode}");
            await Task.Delay(50);
        }
    }

    private async Task<string> IssueAsync(InProcessRelay relay)
    {
        using var response = await _client.SendAsync(IssueRequest(relay));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("url").GetString()!;
    }

    private static HttpRequestMessage IssueRequest(InProcessRelay relay)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, relay.Url + "/relay/v1/tickets")
        {
            Content = JsonContent.Create(new { model = "mock", stream = true, messages = new[] { new { role = "user", content = StoryPrompt } } }),
        };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        request.Headers.TryAddWithoutValidation("x-mock-max-tokens", "6");
        return request;
    }
}

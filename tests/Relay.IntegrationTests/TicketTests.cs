using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Relay.IntegrationTests.Infrastructure;
using Yarp.ReverseProxy.Configuration;

namespace Relay.IntegrationTests;

/// <summary>Issue 5: one-time stream tickets: issue with normal auth, redeem once with a plain GET, expiry, tampering, route binding.</summary>
[Collection(UpstreamCollection.Name)]
public sealed class TicketTests(MockUpstreamFixture upstream) : IAsyncLifetime
{
    private readonly HttpClient _client = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private InProcessRelay _relay = null!;

    public async Task InitializeAsync()
        => _relay = await InProcessRelay.StartAsync(upstream.Url, AuthTests.RelayKeySettings(), services: s => s.AddSingleton<TimeProvider>(_time));

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _relay.DisposeAsync();
    }

    [Fact]
    public async Task Ticket_StreamsWithAPlainGet_AsIfThePostHadBeenSent_ThenIsUsedUp()
    {
        var url = await IssueAsync();
        Assert.StartsWith("/relay/v1/streams/", url);
        Assert.DoesNotContain(AuthTests.ClientKey, url);

        using var response = await _client.GetAsync(_relay.Url + url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);
        // chunk_size 1 from the issued body: every token its own event (the default cadence would merge these 6 tokens into one).
        Assert.True(events.Count(e => e.Content.Length > 0) >= 6, string.Join("|", events.Select(e => e.Content)));

        // The upstream saw the issued POST: its body, the replayed knob headers, and the route's upstream key.
        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("/v1/chat/completions", record.GetProperty("path").GetString());
        Assert.Contains("\"Tell me a story.\"", record.GetProperty("request_body").GetString());
        Assert.Equal("Bearer " + AuthTests.UpstreamKey, record.GetProperty("authorization").GetString());

        using var again = await _client.GetAsync(_relay.Url + url);
        await ErrorTests.AssertErrorAsync(again, 410, "invalid_request_error", "ticket_used");
        AuthTests.AssertNotLogged(_relay, AuthTests.ClientKey, AuthTests.UpstreamKey);
    }

    [Fact]
    public async Task Ticket_ExpiresAfterItsLifetime()
    {
        var url = await IssueAsync();
        _time.Advance(TimeSpan.FromSeconds(61));
        await ErrorTests.AssertErrorAsync(await _client.GetAsync(_relay.Url + url), 401, "authentication_error", "ticket_expired");

        // Control: within the lifetime the same kind of ticket works.
        var fresh = await IssueAsync();
        _time.Advance(TimeSpan.FromSeconds(59));
        using var ok = await _client.GetAsync(_relay.Url + fresh, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(30)]
    [InlineData(-3)]
    public async Task TamperedTicket_Gets401(int position)
    {
        var url = await IssueAsync();
        var ticket = url["/relay/v1/streams/".Length..];
        var index = position >= 0 ? position : ticket.Length + position;
        var tampered = ticket[..index] + (ticket[index] == 'A' ? 'B' : 'A') + ticket[(index + 1)..];
        await ErrorTests.AssertErrorAsync(await _client.GetAsync($"{_relay.Url}/relay/v1/streams/{tampered}"), 401, "authentication_error", "invalid_ticket");
        await ErrorTests.AssertErrorAsync(await _client.GetAsync($"{_relay.Url}/relay/v1/streams/not-a-ticket"), 401, "authentication_error", "invalid_ticket");

        // The untouched ticket is still good: tampering did not consume it.
        using var ok = await _client.GetAsync(_relay.Url + url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task Ticket_IsBoundToItsRoute()
    {
        var url = await IssueAsync();
        // The route the ticket was issued on is replaced by another one serving the same path.
        var config = _relay.App.Services.GetRequiredService<InMemoryConfigProvider>();
        var current = config.GetConfig();
        config.Update([current.Routes[0] with { RouteId = "another" }], current.Clusters);

        var before = DateTime.UtcNow;
        using var response = await _client.GetAsync(_relay.Url + url);
        Assert.False(response.Headers.Contains("x-mock-request-id"), "the upstream must not be called");
        await ErrorTests.AssertErrorAsync(response, 401, "authentication_error", "ticket_route_mismatch");
        Assert.True(DateTime.UtcNow - before < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task IssuingATicket_NeedsTheNormalAuth_AndAStreamingChatBody()
    {
        using var noKey = await _client.PostAsync(_relay.Url + "/relay/v1/tickets", JsonContent.Create(Body(stream: true)));
        await ErrorTests.AssertErrorAsync(noKey, 401, "authentication_error", "missing_api_key");

        using var notStreaming = await _client.SendAsync(IssueRequest(Body(stream: false)));
        await ErrorTests.AssertErrorAsync(notStreaming, 400, "invalid_request_error", "invalid_value");

        using var broken = IssueRequest(null);
        broken.Content = new StringContent("{\"model\":", System.Text.Encoding.UTF8, "application/json");
        await ErrorTests.AssertErrorAsync(await _client.SendAsync(broken), 400, "invalid_request_error", "invalid_json");
    }

    private async Task<string> IssueAsync()
    {
        using var response = await _client.SendAsync(IssueRequest(Body(stream: true)));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal(_time.GetUtcNow().AddSeconds(60).ToUnixTimeSeconds(), json.GetProperty("expires_at").GetInt64());
        return json.GetProperty("url").GetString()!;
    }

    private HttpRequestMessage IssueRequest(object? body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, _relay.Url + "/relay/v1/tickets") { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + AuthTests.ClientKey);
        request.Headers.TryAddWithoutValidation("x-mock-max-tokens", "6");
        request.Headers.TryAddWithoutValidation("x-mock-ttft-ms", "0");
        request.Headers.TryAddWithoutValidation("x-mock-tokens-per-second", "0");
        return request;
    }

    private static object Body(bool stream) => new
    {
        model = "mock",
        stream,
        stream_options = new { chunk_size = 1 },
        messages = new[] { new { role = "user", content = "Tell me a story." } },
    };
}

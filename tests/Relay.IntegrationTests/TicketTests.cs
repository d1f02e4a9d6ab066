using System.Buffers.Binary;
using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Relay.IntegrationTests.Infrastructure;
using Yarp.ReverseProxy.Configuration;

namespace Relay.IntegrationTests;

/// <summary>One-time stream tickets: issue with normal auth, redeem once with a plain GET, expiry, tampering, route binding.</summary>
public sealed class TicketTests(MockUpstreamFixture upstream) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
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
        var config = _relay.App.Services.GetServices<IProxyConfigProvider>().OfType<Relay.Middleware.Hosting.UpstreamBaseUrlConfigProvider>().Single();
        var current = config.GetConfig();
        config.Update([current.Routes[0] with { RouteId = "another" }], current.Clusters);

        using var response = await _client.GetAsync(_relay.Url + url);
        Assert.False(response.Headers.Contains("x-mock-request-id"), "the upstream must not be called");
        await ErrorTests.AssertErrorAsync(response, 401, "authentication_error", "ticket_route_mismatch");
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

    [Fact]
    public async Task AnExpiredTicket_ResignedWithALaterExpiry_IsRefused()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        await using var relay = await StartWithKeyAsync(key, _time);
        var url = await IssueAsync(relay);
        _time.Advance(TimeSpan.FromSeconds(61));

        // Whoever holds the signing key can write any expiry into the ticket string; the store's own record decides
        // (and its sweep dropped the expired ticket within a second, so the id is unknown by now).
        var resigned = Resign(url, key, _time.GetUtcNow().AddMinutes(10));
        using var response = await _client.GetAsync(relay.Url + resigned);
        Assert.False(response.Headers.Contains("x-mock-request-id"), "the upstream must not be called");
        await ErrorTests.AssertErrorAsync(response, 401, "authentication_error", "invalid_ticket");
    }

    [Fact]
    public async Task Control_ATicketResignedWithinItsLifetime_IsRedeemed()
    {
        // The re-signing above makes valid tickets: it is the store's expiry that refuses the expired one.
        var key = RandomNumberGenerator.GetBytes(32);
        await using var relay = await StartWithKeyAsync(key, _time);
        var url = await IssueAsync(relay);
        var resigned = Resign(url, key, _time.GetUtcNow().AddMinutes(10));
        using var response = await _client.GetAsync(relay.Url + resigned, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task ATicketUnknownToTheStore_Gets401InvalidTicket_NotTicketUsed()
    {
        // Two instances with one signing key: the second never issued the ticket (as after a restart).
        var key = RandomNumberGenerator.GetBytes(32);
        await using var issuer = await StartWithKeyAsync(key, _time);
        await using var other = await StartWithKeyAsync(key, _time);
        var url = await IssueAsync(issuer);

        using var response = await _client.GetAsync(other.Url + url);
        await ErrorTests.AssertErrorAsync(response, 401, "authentication_error", "invalid_ticket");

        // Control: the instance that issued it redeems it, once; then it is used.
        using var ok = await _client.GetAsync(issuer.Url + url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        await ErrorTests.AssertErrorAsync(await _client.GetAsync(issuer.Url + url), 410, "invalid_request_error", "ticket_used");
    }

    public static TheoryData<string, byte[]> KeysWithoutEntropy() => new()
    {
        { "32 zero bytes", new byte[32] },
        { "one byte repeated", Enumerable.Repeat((byte)0x5a, 48).ToArray() },
        { "a short pattern repeated", Enumerable.Range(0, 64).Select(i => (byte)"secret"[i % 6]).ToArray() },
        { "a counting sequence", Enumerable.Range(0, 32).Select(i => (byte)i).ToArray() },
        { "too short", RandomNumberGenerator.GetBytes(16) },
    };

    [Theory]
    [MemberData(nameof(KeysWithoutEntropy))]
    public async Task ASigningKeyWithoutEntropy_FailsAtStartUp(string kind, byte[] key)
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => StartWithKeyAsync(key, TimeProvider.System));
        Assert.Contains("Relay:Tickets:SigningKey", failure.Message);
        Assert.DoesNotContain(Convert.ToBase64String(key), failure.Message);
        Assert.NotEmpty(kind);
    }

    [Fact]
    public async Task Control_ARandomSigningKey_Starts()
    {
        await using var relay = await StartWithKeyAsync(RandomNumberGenerator.GetBytes(32), TimeProvider.System);
        Assert.StartsWith("/relay/v1/streams/", await IssueAsync(relay, TimeProvider.System));
    }

    private Task<InProcessRelay> StartWithKeyAsync(byte[] key, TimeProvider time)
    {
        var settings = AuthTests.RelayKeySettings();
        settings["Relay:Tickets:SigningKey"] = Convert.ToBase64String(key);
        return InProcessRelay.StartAsync(upstream.Url, settings, services: s => s.AddSingleton(time));
    }

    /// <summary>The ticket of <paramref name="url"/> with another expiry, signed with <paramref name="key"/> as Relay signs.</summary>
    private static string Resign(string url, byte[] key, DateTimeOffset expiresAt)
    {
        var ticket = url["/relay/v1/streams/".Length..];
        var payload = Base64Url.DecodeFromChars(ticket.AsSpan(0, ticket.IndexOf('.')));
        BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(16, 8), expiresAt.ToUnixTimeMilliseconds());
        return "/relay/v1/streams/" + Base64Url.EncodeToString(payload) + "." + Base64Url.EncodeToString(HMACSHA256.HashData(key, payload));
    }

    private Task<string> IssueAsync() => IssueAsync(_relay);

    private Task<string> IssueAsync(InProcessRelay relay) => IssueAsync(relay, _time);

    private async Task<string> IssueAsync(InProcessRelay relay, TimeProvider time)
    {
        using var response = await _client.SendAsync(IssueRequest(Body(stream: true), relay));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal(time.GetUtcNow().AddSeconds(60).ToUnixTimeSeconds(), json.GetProperty("expires_at").GetInt64());
        return json.GetProperty("url").GetString()!;
    }

    private HttpRequestMessage IssueRequest(object? body, InProcessRelay? relay = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, (relay ?? _relay).Url + "/relay/v1/tickets") { Content = body is null ? null : JsonContent.Create(body) };
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

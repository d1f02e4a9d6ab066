using System.Net;
using System.Text.Json;
using Relay.IntegrationTests.Infrastructure;
using Relay.Middleware.Auth;

namespace Relay.IntegrationTests;

/// <summary>
/// Relay keys (hashed in configuration, replaced by the route's upstream key), pass-through, and the
/// query-string token (RFC 6750 <c>access_token</c> and an alias) that must never reach the upstream URL or a log.
/// </summary>
public sealed class AuthTests(MockUpstreamFixture upstream) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    internal const string ClientKey = "rk-test-client-key-0123456789abcdef";
    internal const string UpstreamKey = "sk-upstream-secret-9f8e7d6c5b4a";
    private const string QueryToken = "qt-browser-token-24680";

    // The host's "Request starting ..." line with the URL (off in config/relay.json, on here to prove the redaction).
    private const string RequestLineLogging = "Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics";

    private readonly HttpClient _client = new();
    private InProcessRelay _keys = null!;
    private InProcessRelay _passThrough = null!;

    /// <summary>A Relay in relay-keys mode, with one key (as its hash) and an upstream key, and query tokens on.</summary>
    internal static Dictionary<string, string?> RelayKeySettings() => new()
    {
        ["Relay:Auth:Mode"] = "RelayKeys",
        ["Relay:Auth:UpstreamApiKey"] = UpstreamKey,
        ["Relay:Auth:QueryToken"] = "true",
        ["Relay:RelayKeys:0:Name"] = "team-a",
        ["Relay:RelayKeys:0:Sha256"] = RelayKeyRing.Hash(ClientKey),
    };

    public async Task InitializeAsync()
    {
        _keys = await InProcessRelay.StartAsync(upstream.Url, RelayKeySettings());
        _passThrough = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Auth:QueryToken"] = "true",
            ["Relay:Auth:QueryTokenAlias"] = "api_key",
            [RequestLineLogging] = "Information",
        });
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _keys.DisposeAsync();
        await _passThrough.DisposeAsync();
    }

    [Fact]
    public async Task RelayKey_IsAccepted_AndTheUpstreamGetsTheRouteKey_WhichIsNeverEchoed()
    {
        using var request = Chat(_keys.Url, ("Authorization", "Bearer " + ClientKey));
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseRead.ReadAllAsync(response);
        Assert.True(events[^1].IsDone);

        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("Bearer " + UpstreamKey, record.GetProperty("authorization").GetString());
        var seenByClient = response.Headers + string.Join("\n", events.Select(e => e.Data));
        Assert.DoesNotContain(UpstreamKey, seenByClient);
        AssertNotLogged(_keys, UpstreamKey, ClientKey);
    }

    [Theory]
    [InlineData("Bearer rk-someone-elses-key", "invalid_api_key")]
    [InlineData(null, "missing_api_key")]
    public async Task UnknownOrMissingRelayKey_Gets401_AndTheUpstreamIsNotCalled(string? authorization, string code)
    {
        var before = await UpstreamRequestCountAsync();
        using var request = authorization is null ? Chat(_keys.Url) : Chat(_keys.Url, ("Authorization", authorization));
        using var response = await _client.SendAsync(request);
        Assert.False(response.Headers.Contains("x-mock-request-id"), "the upstream must not be called");
        await ErrorTests.AssertErrorAsync(response, 401, "authentication_error", code);
        Assert.Equal(before + 1, await UpstreamRequestCountAsync()); // only the probe itself arrived
    }

    [Fact]
    public async Task RelayKey_RestrictedToAnotherRoute_Gets403()
    {
        var settings = RelayKeySettings();
        settings["Relay:RelayKeys:0:Routes:0"] = "some-other-route";
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, settings);
        using var response = await _client.SendAsync(Chat(relay.Url, ("Authorization", "Bearer " + ClientKey)));
        await ErrorTests.AssertErrorAsync(response, 403, "authentication_error", "route_not_allowed");
    }

    [Fact]
    public async Task RelayKeyInTheQuery_IsAccepted_AndRemovedFromTheUpstreamUrl()
    {
        using var request = Chat(_keys.Url + "/v1/chat/completions?access_token=" + ClientKey + "&keep=1", path: "");
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("?keep=1", record.GetProperty("query").GetString());
        Assert.Equal("Bearer " + UpstreamKey, record.GetProperty("authorization").GetString());
        AssertNotLogged(_keys, ClientKey, UpstreamKey);
    }

    [Theory]
    [InlineData("access_token")]
    [InlineData("api_key")]
    public async Task QueryToken_IsForwardedAsAuthorization_NotInTheUrl_NorInAnyLog(string name)
    {
        using var request = Chat($"{_passThrough.Url}/v1/chat/completions?{name}={QueryToken}&other=a%20b", path: "");
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await SseRead.ReadAllAsync(response);

        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("Bearer " + QueryToken, record.GetProperty("authorization").GetString());
        Assert.Equal("?other=a%20b", record.GetProperty("query").GetString());
        // The host logs the request line before any middleware runs: the token must be gone by then.
        Assert.Contains(_passThrough.Logs.GetSnapshot(), r => r.Message.Contains("other=a%20b", StringComparison.Ordinal));
        AssertNotLogged(_passThrough, QueryToken);
    }

    [Theory]
    [InlineData("access%5Ftoken")]
    [InlineData("Access_Token")]
    [InlineData("ACCESS_TOKEN")]
    [InlineData("%61ccess_token")]
    [InlineData("API_KEY")]
    [InlineData("api%5fkey")]
    public async Task QueryTokenSpellings_AreOneName_TakenOutOfTheUpstreamUrl_AndOutOfEveryLog_AtTrace(string name)
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, TraceEverything(new Dictionary<string, string?>
        {
            ["Relay:Auth:QueryToken"] = "true",
            ["Relay:Auth:QueryTokenAlias"] = "api_key",
        }));
        // A raw request line: HttpClient's Uri would turn %5F into '_' and %61 into 'a' before sending.
        var head = await RawPostAsync(relay, $"/v1/chat/completions?{name}={QueryToken}&other=1");
        Assert.StartsWith("HTTP/1.1 200", head);

        var record = await upstream.RecordAsync(head.Split("\r\n").Single(l => l.StartsWith("x-mock-request-id:", StringComparison.OrdinalIgnoreCase)).Split(':', 2)[1].Trim());
        Assert.Equal("Bearer " + QueryToken, record.GetProperty("authorization").GetString());
        Assert.Equal("?other=1", record.GetProperty("query").GetString());
        // Control: the request line is logged at this level (the host's, and YARP's upstream URL), just without the token.
        Assert.Contains(relay.Logs.GetSnapshot(), r => r.Message.Contains("other=1", StringComparison.Ordinal));
        AssertNotLogged(relay, QueryToken);
    }

    [Fact]
    public async Task QueryTokenInAnotherCase_NextToTheSameKeyInTheHeader_IsNotForwardedUpstream()
    {
        using var request = Chat($"{_keys.Url}/v1/chat/completions?Access_Token={ClientKey}&keep=1", path: "");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + ClientKey);
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("?keep=1", record.GetProperty("query").GetString());
        AssertNotLogged(_keys, ClientKey);
    }

    [Theory]
    [InlineData("access_token")]
    [InlineData("Access%5FToken")]
    public async Task RouteWithoutQueryTokens_RejectsAQueryToken_NeverForwardsIt_NorLogsIt(string name)
    {
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, TraceEverything([]));
        var head = await RawPostAsync(relay, $"/v1/chat/completions?{name}={QueryToken}");
        Assert.StartsWith("HTTP/1.1 400", head);
        Assert.Contains("\"query_token_not_accepted\"", head);
        Assert.DoesNotContain("x-mock-request-id", head, StringComparison.OrdinalIgnoreCase);
        AssertNotLogged(relay, QueryToken);

        // Control: without a token the route works, and an ordinary parameter goes upstream.
        using var plain = await _client.SendAsync(Chat($"{relay.Url}/v1/chat/completions?other=1", path: ""), HttpCompletionOption.ResponseHeadersRead);
        var record = await upstream.RecordAsync(plain.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("?other=1", record.GetProperty("query").GetString());
    }

    /// <summary>Posts a streaming chat body with the request target exactly as given; returns the whole response.</summary>
    private static async Task<string> RawPostAsync(InProcessRelay relay, string target)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, new Uri(relay.Url).Port);
        var body = """{"model":"mock","stream":true,"messages":[{"role":"user","content":"Hi."}]}""";
        var request = $"POST {target} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n"
            + "x-mock-ttft-ms: 0\r\nx-mock-tokens-per-second: 0\r\nx-mock-max-tokens: 5\r\nConnection: close\r\n\r\n" + body;
        var stream = tcp.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request));
        var head = await CancellationTests.ReadHeadAsync(stream);
        // Read the rest, so the request completes before the logs are checked.
        using var reader = new StreamReader(stream);
        return head + await reader.ReadToEndAsync();
    }

    /// <summary>Every category at Trace: Kestrel's, routing's and YARP's debug lines (YARP's carries the upstream URL).</summary>
    private static Dictionary<string, string?> TraceEverything(Dictionary<string, string?> settings)
    {
        settings["Logging:LogLevel:Default"] = "Trace";
        settings["Logging:LogLevel:Microsoft"] = "Trace";
        settings["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
        settings["Logging:LogLevel:Yarp"] = "Trace";
        settings[RequestLineLogging] = "Trace";
        return settings;
    }

    [Fact]
    public async Task PassThrough_ForwardsTheClientsAuthorizationUnchanged()
    {
        using var response = await _client.SendAsync(Chat(_passThrough.Url, ("Authorization", "Bearer sk-client-own")), HttpCompletionOption.ResponseHeadersRead);
        var record = await upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal("Bearer sk-client-own", record.GetProperty("authorization").GetString());
    }

    [Fact]
    public async Task HeaderAndADifferentQueryToken_AreRejected_AndTheUpstreamIsNotCalled()
    {
        using var request = Chat($"{_passThrough.Url}/v1/chat/completions?access_token={QueryToken}", path: "");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer something-else");
        using var response = await _client.SendAsync(request);
        Assert.False(response.Headers.Contains("x-mock-request-id"));
        await ErrorTests.AssertErrorAsync(response, 400, "invalid_request_error", "conflicting_credentials");

        // The same value twice is one credential.
        using var same = Chat($"{_passThrough.Url}/v1/chat/completions?access_token={QueryToken}", path: "");
        same.Headers.TryAddWithoutValidation("Authorization", "Bearer " + QueryToken);
        using var ok = await _client.SendAsync(same, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    internal static void AssertNotLogged(InProcessRelay relay, params string[] secrets)
    {
        foreach (var log in relay.Logs.GetSnapshot())
        {
            var text = log.Message + " " + string.Join(" ", log.StructuredState?.Select(kv => kv.Value) ?? []) + " " + log.Exception;
            foreach (var secret in secrets)
            {
                Assert.False(text.Contains(secret, StringComparison.Ordinal), $"a log record carries a secret: [{log.Category}] {log.Message}");
            }
        }
    }

    internal static HttpRequestMessage Chat(string url, params (string Name, string Value)[] headers) => Chat(url, "/v1/chat/completions", headers);

    private static HttpRequestMessage Chat(string url, string path, params (string Name, string Value)[] headers)
    {
        var request = SseRead.ChatRequest(url, path: path, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-tokens-per-second"] = "0", ["x-mock-max-tokens"] = "5" });
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    private async Task<int> UpstreamRequestCountAsync()
    {
        // The mock's ids count up: a fresh request's id tells how many came before it.
        using var probe = await _client.SendAsync(SseRead.ChatRequest(upstream.Url, stream: false, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "1" }));
        var id = probe.Headers.GetValues("x-mock-request-id").Single();
        return Convert.ToInt32(id[8..], 16);
    }
}

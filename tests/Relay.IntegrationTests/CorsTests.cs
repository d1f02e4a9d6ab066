using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Relay owns CORS. An upstream that answers <c>Access-Control-Allow-Origin: *</c> and
/// <c>Access-Control-Allow-Credentials: true</c> (as OpenAI-compatible servers often do) must not open a route with
/// CORS off, nor hand its <c>*</c> to an origin Relay refused; preflights are Relay's to answer; a route opts into the
/// upstream's CORS explicitly. The upstream's <c>Server</c> header is hidden.
/// </summary>
public sealed class CorsTests : IAsyncLifetime
{
    private const string Allowed = "https://app.example";
    private const string Refused = "https://evil.example";

    private readonly HttpClient _client = new();
    private ScriptedUpstream _upstream = null!;
    private InProcessRelay _off = null!;
    private InProcessRelay _on = null!;

    public async Task InitializeAsync()
    {
        _upstream = await ScriptedUpstream.StartAsync(static async context =>
        {
            // What a permissive upstream sends on every answer, preflights included.
            var headers = context.Response.Headers;
            headers.AccessControlAllowOrigin = "*";
            headers.AccessControlAllowCredentials = "true";
            headers.AccessControlExposeHeaders = "x-upstream-internal";
            headers.Server = "upstream-server/1.2.3";
            if (HttpMethods.IsOptions(context.Request.Method))
            {
                headers.AccessControlAllowMethods = "*";
                context.Response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }

            await ScriptedUpstream.WriteChatStreamAsync(context);
        });
        _off = await InProcessRelay.StartAsync(_upstream.Url, Routes());
        var on = Routes();
        on["Relay:Cors:AllowedOrigins:0"] = Allowed;
        _on = await InProcessRelay.StartAsync(_upstream.Url, on);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _off.DisposeAsync();
        await _on.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    [Fact]
    public async Task Control_TheUpstreamItself_SendsAWildcardWithCredentials_AndItsServer()
    {
        using var response = await _client.SendAsync(Post(_upstream.Url + "/v1/chat/completions", Refused));
        Assert.Equal("*", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("true", response.Headers.GetValues("Access-Control-Allow-Credentials").Single());
        Assert.Contains("upstream-server/1.2.3", response.Headers.Server.ToString());
    }

    [Fact]
    public async Task CorsOff_TheUpstreamsCorsHeaders_AreStripped_ForAnyOrigin()
    {
        using var response = await _client.SendAsync(Post(_off.Url + "/v1/chat/completions", Refused));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertNoCorsHeaders(response);
        Assert.Contains("hi", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task CorsOff_APreflight_IsAnsweredByRelay_WithoutCorsHeaders_AndNeverReachesTheUpstream()
    {
        using var response = await _client.SendAsync(Preflight(_off.Url + "/v1/chat/completions", Allowed));
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        AssertNoCorsHeaders(response);
        Assert.DoesNotContain(_upstream.Requests, r => r.StartsWith("OPTIONS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CorsOn_ARefusedOrigin_DoesNotGetTheUpstreamsWildcard_AnAllowedOriginGetsRelaysOwnHeadersOnly()
    {
        using var refused = await _client.SendAsync(Post(_on.Url + "/v1/chat/completions", Refused));
        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        AssertNoCorsHeaders(refused);

        using var allowed = await _client.SendAsync(Post(_on.Url + "/v1/chat/completions", Allowed));
        Assert.Equal(Allowed, allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        // Relay's policy does not allow credentials or expose the upstream's headers: those were the upstream's.
        Assert.False(allowed.Headers.Contains("Access-Control-Allow-Credentials"));
        Assert.False(allowed.Headers.Contains("Access-Control-Expose-Headers"));
    }

    [Fact]
    public async Task CorsOn_Preflights_AreAnsweredByRelay_AndNeverReachTheUpstream()
    {
        using var allowed = await _client.SendAsync(Preflight(_on.Url + "/v1/chat/completions", Allowed));
        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal(Allowed, allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("600", allowed.Headers.GetValues("Access-Control-Max-Age").Single());

        using var refused = await _client.SendAsync(Preflight(_on.Url + "/v1/chat/completions", Refused));
        Assert.Equal(HttpStatusCode.NoContent, refused.StatusCode);
        AssertNoCorsHeaders(refused);
        Assert.DoesNotContain(_upstream.Requests, r => r.StartsWith("OPTIONS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARouteWithPassUpstreamHeaders_GetsTheUpstreamsCorsHeaders_AndItsPreflightsGoUpstream()
    {
        using var response = await _client.SendAsync(Post(_off.Url + "/upstream-cors/v1/chat/completions", Refused));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("*", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("true", response.Headers.GetValues("Access-Control-Allow-Credentials").Single());

        using var preflight = await _client.SendAsync(Preflight(_off.Url + "/upstream-cors/v1/chat/completions", Refused));
        Assert.Equal("*", preflight.Headers.GetValues("Access-Control-Allow-Methods").Single());
        Assert.Contains("OPTIONS /upstream-cors/v1/chat/completions", _upstream.Requests);
    }

    [Fact]
    public async Task PassUpstreamHeaders_WithAllowedOrigins_FailsAtStartUp()
    {
        var settings = Routes();
        settings["Relay:Cors:PassUpstreamHeaders"] = "true";
        settings["Relay:Cors:AllowedOrigins:0"] = Allowed;
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => InProcessRelay.StartAsync(_upstream.Url, settings));
        Assert.Contains("PassUpstreamHeaders", failure.Message);
    }

    [Fact]
    public async Task ARouteNamingItsOwnOrigins_AndPassUpstreamHeaders_FailsAtStartUp()
    {
        var settings = Routes();
        settings["ReverseProxy:Routes:upstream-cors:Metadata:Relay.Cors.AllowedOrigins.0"] = Allowed;
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => InProcessRelay.StartAsync(_upstream.Url, settings));
        Assert.Contains("PassUpstreamHeaders", failure.InnerException?.Message);
    }

    [Fact]
    public async Task TheUpstreamsServerHeader_IsHidden()
    {
        using var response = await _client.SendAsync(Post(_off.Url + "/v1/chat/completions", Refused));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(response.Headers.Server);
        Assert.False(response.Headers.Contains("Server"));

        // Relay's own answers have none either (Kestrel's is off).
        using var notFound = await _client.GetAsync(_off.Url + "/nowhere");
        Assert.False(notFound.Headers.Contains("Server"));
    }

    private static void AssertNoCorsHeaders(HttpResponseMessage response)
    {
        var cors = response.Headers.Concat(response.Content.Headers).Where(h => h.Key.StartsWith("Access-Control-", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(cors.Count == 0, "CORS headers: " + string.Join(", ", cors.Select(h => $"{h.Key}: {string.Join(",", h.Value)}")));
    }

    /// <summary>The default route to the upstream, and a route that lets the upstream own CORS.</summary>
    private Dictionary<string, string?> Routes() => new()
    {
        ["ReverseProxy:Routes:default:ClusterId"] = "up",
        ["ReverseProxy:Routes:default:Match:Path"] = "/v1/{**rest}",
        ["ReverseProxy:Routes:upstream-cors:ClusterId"] = "up",
        ["ReverseProxy:Routes:upstream-cors:Match:Path"] = "/upstream-cors/{**rest}",
        ["ReverseProxy:Routes:upstream-cors:Metadata:Relay.Cors.PassUpstreamHeaders"] = "true",
        ["ReverseProxy:Clusters:up:Destinations:d1:Address"] = _upstream.Url,
    };

    private static HttpRequestMessage Post(string url, string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent("""{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("Origin", origin);
        return request;
    }

    private static HttpRequestMessage Preflight(string url, string origin)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, url);
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        request.Headers.Add("Access-Control-Request-Headers", "authorization, content-type");
        return request;
    }
}

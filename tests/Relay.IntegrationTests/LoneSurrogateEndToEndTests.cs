using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// What a newcomer meets first: Relay in front of the built-in simulated upstream, and a chat body holding an
/// unpaired surrogate escape (<c>JSON.stringify</c> of half an emoji). Relay forwards it untouched (RequestInputTests
/// checks the bytes); the upstream answers 400 <c>invalid_request_error</c>, and the client gets that answer, never
/// a 500 from either of them.
/// </summary>
public sealed class LoneSurrogateEndToEndTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    [Theory]
    [InlineData("""{"model":"mock","stream":true,"messages":[{"role":"user","content":"abc \ud83d"}]}""")]
    [InlineData("""{"model":"mock","stream":false,"messages":[{"role":"user","content":"abc \ud83d"}]}""")]
    [InlineData("""{"model":"mock\udc00","stream":true,"stream_options":{"chunk_size":2},"messages":[{"role":"user","content":"hi"}]}""")]
    public async Task UnpairedSurrogateEscape_ThroughRelay_IsTheUpstreams400_NotA500(string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, Relay.Url + "/v1/chat/completions") { Content = content };
        request.Headers.Add("x-mock-ttft-ms", "0");

        using var response = await Client.SendAsync(request);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("surrogate", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        // The upstream's own answer, about the bytes the client sent.
        var record = await Upstream.RecordAsync(response.Headers.GetValues("x-mock-request-id").Single());
        Assert.Equal(400, record.GetProperty("http_status").GetInt32());
        Assert.Contains("\\ud", record.GetProperty("request_body").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Relay.Logs.GetSnapshot(), r => r.Level >= LogLevel.Error);
    }
}

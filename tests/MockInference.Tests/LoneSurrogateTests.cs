using System.Net;
using System.Text.Json;

namespace MockInference.Tests;

/// <summary>
/// A body whose strings hold an unpaired UTF-16 surrogate escape (<c>"abc \ud83d"</c>, what JavaScript's
/// <c>JSON.stringify</c> makes of half an emoji) is answered as strict servers answer it: 400
/// <c>invalid_request_error</c> with an OpenAI-style body. It used to crash the request (500, empty body).
/// </summary>
public sealed class LoneSurrogateTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    public static TheoryData<string, string> Bodies => new()
    {
        // The case: a lone high surrogate at the end of a message.
        { "/v1/chat/completions", """{"model":"mock","stream":true,"messages":[{"role":"user","content":"abc \ud83d"}]}""" },
        { "/v1/chat/completions", """{"model":"mock","stream":false,"messages":[{"role":"user","content":"abc \ud83d"}]}""" },
        // A lone low surrogate in a content part; a pair in the wrong order.
        { "/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":[{"type":"text","text":"\udc00 x"}]}]}""" },
        { "/v1/chat/completions", """{"model":"mock","messages":[{"role":"user","content":"\ude00\ud83d"}]}""" },
        // In the model, in a field the mock does not read, in a property name.
        { "/v1/chat/completions", """{"model":"mock\ud83d","messages":[{"role":"user","content":"hi"}]}""" },
        { "/v1/chat/completions", """{"model":"mock","user":"\ud83d","messages":[{"role":"user","content":"hi"}]}""" },
        { "/v1/chat/completions", """{"model":"mock","metadata":{"\ud83d":"x"},"messages":[{"role":"user","content":"hi"}]}""" },
        // The legacy completions endpoint's prompt.
        { "/v1/completions", """{"model":"mock","stream":true,"prompt":"abc \ud83d"}""" },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task UnpairedSurrogateEscape_Is400InvalidRequestError_NeverACrash(string path, string body)
    {
        using var response = await server.Client.SendAsync(MockApi.Post(path, body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True(response.Headers.Contains("x-mock-request-id"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("surrogate", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
    }

    [Fact]
    public async Task Control_ASurrogatePairEscape_IsText_AndEchoedWhole()
    {
        const string body = """{"model":"mock","stream":true,"messages":[{"role":"user","content":"abc \ud83d\ude00"}]}""";
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Post("/v1/chat/completions", body, new() { ["x-mock-reply"] = "echo" }));

        Assert.Equal("abc \U0001F600", MockApi.Content(events));
    }

    [Fact]
    public async Task Embeddings_UnpairedSurrogateEscape_Is400()
    {
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/embeddings", """{"model":"mock","input":"abc \ud83d"}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }
}

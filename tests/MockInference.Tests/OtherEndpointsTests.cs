using System.Text;
using System.Text.Json;

namespace MockInference.Tests;

public sealed class OtherEndpointsTests(MockServerFixture server) : IClassFixture<MockServerFixture>
{
    [Fact]
    public async Task Models_ListsMockModels()
    {
        using var response = await server.Client.GetAsync("/v1/models");
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.True(response.Headers.Contains("x-mock-request-id"));
        Assert.Equal("list", root.GetProperty("object").GetString());
        var ids = root.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains("mock", ids);
        Assert.Contains("mock-json", ids);
    }

    [Fact]
    public async Task LegacyCompletions_StreamTextDeltas_AndMatchNonStreaming()
    {
        const string body = """{"model":"mock","prompt":"Say something","max_tokens":30,"stream":true}""";
        var (_, events) = await MockApi.StreamAsync(server.Client, MockApi.Post("/v1/completions", body));

        Assert.True(events[^1].IsDone);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        var streamed = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());

        using var response = await server.Client.SendAsync(MockApi.Post("/v1/completions", body.Replace("true", "false", StringComparison.Ordinal)));
        var completion = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(completion.GetProperty("choices")[0].GetProperty("text").GetString(), streamed);
    }

    [Fact]
    public async Task Embeddings_AreDeterministicUnitVectors()
    {
        const string body = """{"model":"mock","input":["a","b","a"]}""";
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/embeddings", body));
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        var vectors = root.GetProperty("data").EnumerateArray()
            .Select(d => d.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToList();
        Assert.Equal(3, vectors.Count);
        Assert.Equal(vectors[0], vectors[2]);
        Assert.NotEqual(vectors[0], vectors[1]);
        Assert.InRange(vectors[0].Sum(v => v * v), 0.999, 1.001);
        Assert.True(root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32() > 0);
    }

    [Fact]
    public async Task Embeddings_Base64_DecodesToFloats()
    {
        const string body = """{"model":"mock","input":"hello","encoding_format":"base64","dimensions":8}""";
        using var response = await server.Client.SendAsync(MockApi.Post("/v1/embeddings", body));
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        var bytes = Convert.FromBase64String(root.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        Assert.Equal(8 * sizeof(float), bytes.Length);
        Assert.NotNull(Encoding.UTF8.GetString(bytes));
    }
}

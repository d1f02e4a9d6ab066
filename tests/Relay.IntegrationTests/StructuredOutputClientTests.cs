using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Real clients read streams that carry <c>parsed</c>: the OpenAI .NET SDK and npm <c>openai</c> ignore
/// the extra field (and see a schema violation as the stream's error), and the WebSocket bridge carries it in its
/// <c>response.chunk</c> frames.
/// </summary>
public sealed class StructuredOutputClientTests(MockUpstreamFixture upstream) : RelayTestBase(upstream)
{
    private static readonly string? NodeFolder = NodeScript.FindFolder("openai-node", "structured.mjs");

    private static Dictionary<string, string> MockHeaders(string? violation = null)
    {
        var headers = new Dictionary<string, string>
        {
            ["x-mock-reply"] = "json",
            ["x-mock-seed"] = "3",
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-tokens-per-second"] = "0",
        };
        if (violation is not null)
        {
            headers["x-mock-json-violation"] = violation;
            headers["x-mock-json-violation-at-token"] = "30";
        }

        return headers;
    }

    [Fact]
    public async Task OpenAIDotnetSdk_ReadsAStreamWithParsed_TheContentIsTheWholeDocument()
    {
        var (text, error, finish) = await DotnetSdkAsync(violation: null);
        Assert.Null(error);
        Assert.Equal(ChatFinishReason.Stop, finish);
        using var document = JsonDocument.Parse(text);
        Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
    }

    // The .NET SDK (2.15) does not raise a stream's error event: it reads it as an empty update. What its caller sees
    // is a stream without a finish reason, whose text is the valid prefix Relay delivered (never the broken token).
    [Fact]
    public async Task OpenAIDotnetSdk_ASchemaViolation_EndsTheStreamWithoutAFinishReason()
    {
        var (text, error, finish) = await DotnetSdkAsync(violation: "type");
        Assert.Null(error);
        Assert.Null(finish);
        Assert.NotEmpty(text);
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(text));
    }

    [SkippableFact]
    public async Task NpmOpenAI_ReadsAStreamWithParsed_EachChunkSeesThePartialObject()
    {
        var result = await NodeAsync("partial");
        Assert.True(result["error"] is null, result.ToJsonString());
        Assert.True(result["parsedCount"]!.GetValue<int>() > 1, result.ToJsonString());
        using var whole = JsonDocument.Parse(result["content"]!.GetValue<string>());
        Assert.True(JsonElement.DeepEquals(whole.RootElement, JsonDocument.Parse(result["lastParsed"]!.ToJsonString()).RootElement), result.ToJsonString());
    }

    [SkippableFact]
    public async Task NpmOpenAI_ASchemaViolation_IsAnAPIErrorWithItsCodeAndPointer()
    {
        var result = await NodeAsync("violation");
        var error = result["error"];
        Assert.True(error is not null, result.ToJsonString());
        Assert.Equal("APIError", error!["name"]!.GetValue<string>());
        Assert.Equal("schema_violation", error["code"]!.GetValue<string>());
        Assert.Equal("invalid_response", error["type"]!.GetValue<string>());
        Assert.StartsWith("/", error["param"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebSocketBridge_ChunkFramesCarryParsed_TheLastIsTheWholeDocument()
    {
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, MockHeaders());
        await client.SendRawAsync(CreateMessage());
        var messages = await client.ReceiveUntilAsync("response.done");
        var chunks = messages.Where(static m => m.Type == "response.chunk" && m.Content.Length > 0).ToList();
        var parsed = chunks.Select(static m => m.Json.GetProperty("chunk").GetProperty("choices")[0].GetProperty("delta").GetProperty("parsed")).ToList();
        using var whole = JsonDocument.Parse(string.Concat(chunks.Select(static m => m.Content)));
        Assert.True(JsonElement.DeepEquals(whole.RootElement, parsed[^1]), parsed[^1].GetRawText());
        Assert.Equal("completed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
    }

    [Fact]
    public async Task WebSocketBridge_ASchemaViolation_IsAnErrorFrame_AndTheResponseFailed()
    {
        var headers = MockHeaders("type");
        await using var client = await BridgeClient.ConnectAsync(Relay.Url, headers);
        await client.SendRawAsync(CreateMessage());
        var messages = await client.ReceiveUntilAsync("response.done");
        var error = Assert.Single(messages, static m => m.Type == "error").Json.GetProperty("error");
        Assert.Equal("schema_violation", error.GetProperty("code").GetString());
        Assert.StartsWith("/", error.GetProperty("param").GetString(), StringComparison.Ordinal);
        Assert.Equal("failed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
    }

    private static string CreateMessage()
        => "{\"type\":\"response.create\",\"response\":{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"a ticket\"}],"
            + "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"ticket\",\"schema\":" + StructuredOutputTests.Schema + "}},"
            + "\"stream_options\":{\"partial_json\":true}}}";

    private async Task<(string Text, Exception? Error, ChatFinishReason? Finish)> DotnetSdkAsync(string? violation)
    {
        // The SDK has no stream_options of Relay's; a handler adds partial_json (and the mock's knobs) to its request.
        using var http = new HttpClient(new RelayOptionsHandler(MockHeaders(violation)) { InnerHandler = new SocketsHttpHandler() });
        var client = new ChatClient("mock", new ApiKeyCredential("sk-not-used"), new OpenAIClientOptions
        {
            Endpoint = new Uri(Relay.Url + "/v1"),
            Transport = new HttpClientPipelineTransport(http),
        });
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("ticket", BinaryData.FromString(StructuredOutputTests.Schema)),
        };
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        try
        {
            await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("a ticket")], options))
            {
                finish ??= update.FinishReason;
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }
        }
        catch (Exception e)
        {
            return (text.ToString(), e, finish);
        }

        return (text.ToString(), null, finish);
    }

    private async Task<JsonNode> NodeAsync(string mode)
    {
        Skip.If(NodeFolder is null, "tests/openai-node not found next to the test assembly's repository.");
        Skip.If(!File.Exists(Path.Combine(NodeFolder, "node_modules", "openai", "package.json")),
            "tests/openai-node/node_modules is missing: run `npm ci` in tests/openai-node (.ci/run does).");
        Skip.If(NodeScript.Node is null, "node is not installed.");
        var (exitCode, stdout, stderr) = await NodeScript.RunAsync(NodeFolder, "structured.mjs", [mode, StructuredOutputTests.Schema], TimeSpan.FromSeconds(180),
            new Dictionary<string, string> { ["RELAY_URL"] = Relay.Url });
        Assert.True(exitCode == 0, $"node structured.mjs {mode} exited {exitCode}:\n{stdout}\n{stderr}");
        return JsonNode.Parse(stdout.Trim().Split('\n')[^1])!;
    }

    /// <summary>Adds <c>stream_options.partial_json</c> to the SDK's request body, and the mock's headers.</summary>
    private sealed class RelayOptionsHandler(Dictionary<string, string> headers) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = JsonNode.Parse(await request.Content!.ReadAsStringAsync(cancellationToken))!.AsObject();
            var options = body["stream_options"] as JsonObject ?? [];
            body["stream_options"] = options;
            options["partial_json"] = true;
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            foreach (var (k, v) in headers)
            {
                request.Headers.TryAddWithoutValidation(k, v);
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}

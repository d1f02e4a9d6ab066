using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace Relay.Middleware.Tests.Support;

/// <summary>
/// What a client makes of a chat stream, in the shape of the test data's <c>EXPECTED_SUMMARY.json</c>: per choice
/// the joined content, refusal, reasoning, tool calls and finish_reason; the last usage; how many [DONE].
/// </summary>
internal sealed class ChatStreamSummary
{
    public Dictionary<int, ChoiceSummary> Choices { get; } = [];

    public JsonNode? Usage { get; private set; }

    public int DoneCount { get; private set; }

    public static ChatStreamSummary From(IEnumerable<byte[]> events)
    {
        var summary = new ChatStreamSummary();
        foreach (var data in events)
        {
            Assert.True(Utf8.IsValid(data), "event data is not valid UTF-8");
            if (data.AsSpan().SequenceEqual("[DONE]"u8))
            {
                summary.DoneCount++;
                continue;
            }

            using var doc = JsonDocument.Parse(data);
            var root = doc.RootElement;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                summary.Usage = JsonNode.Parse(usage.GetRawText());
            }

            if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            foreach (var choice in choices.EnumerateArray())
            {
                var index = choice.TryGetProperty("index", out var i) ? i.GetInt32() : 0;
                if (!summary.Choices.TryGetValue(index, out var s))
                {
                    summary.Choices[index] = s = new ChoiceSummary();
                }

                if (choice.TryGetProperty("finish_reason", out var finish) && finish.ValueKind == JsonValueKind.String)
                {
                    s.FinishReason = finish.GetString();
                }

                if (choice.TryGetProperty("logprobs", out var logprobs) && logprobs.ValueKind == JsonValueKind.Object)
                {
                    AppendTokens(s.ContentLogprobs, logprobs, "content");
                    AppendTokens(s.RefusalLogprobs, logprobs, "refusal");
                }

                // Legacy text completions (openai-completion-text) carry choices[].text.
                AppendText(s.Content, choice, "text");
                if (!choice.TryGetProperty("delta", out var delta) || delta.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                AppendText(s.Content, delta, "content");
                AppendText(s.Refusal, delta, "refusal");
                AppendText(s.Reasoning, delta, "reasoning_content");
                AppendText(s.Reasoning, delta, "reasoning");
                if (delta.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                {
                    foreach (var call in calls.EnumerateArray())
                    {
                        var toolIndex = call.TryGetProperty("index", out var ti) ? ti.GetInt32() : 0;
                        if (!s.ToolCalls.TryGetValue(toolIndex, out var tool))
                        {
                            s.ToolCalls[toolIndex] = tool = new ToolCallSummary();
                        }

                        if (call.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() is { Length: > 0 } idText)
                        {
                            tool.Id = idText;
                        }

                        if (call.TryGetProperty("function", out var function) && function.ValueKind == JsonValueKind.Object)
                        {
                            AppendText(tool.Name, function, "name");
                            AppendText(tool.Arguments, function, "arguments");
                        }
                    }
                }
            }
        }

        return summary;
    }

    /// <summary>Asserts this summary equals one entry of an EXPECTED_SUMMARY.json.</summary>
    public void AssertMatches(JsonElement expected, string file)
    {
        foreach (var property in expected.GetProperty("choices").EnumerateObject())
        {
            var index = int.Parse(property.Name, CultureInfo.InvariantCulture);
            Assert.True(Choices.TryGetValue(index, out var actual), $"{file}: choice {index} missing");
            var e = property.Value;
            Assert.Equal(e.GetProperty("content").GetString(), actual.Content.ToString());
            Assert.Equal(e.GetProperty("refusal").GetString(), actual.Refusal.ToString());
            Assert.Equal(e.GetProperty("reasoning_content").GetString(), actual.Reasoning.ToString());
            Assert.Equal(e.GetProperty("finish_reason").GetString(), actual.FinishReason);
            var tools = e.GetProperty("tool_calls");
            Assert.Equal(tools.EnumerateObject().Count(), actual.ToolCalls.Count);
            foreach (var tool in tools.EnumerateObject())
            {
                var t = actual.ToolCalls[int.Parse(tool.Name, CultureInfo.InvariantCulture)];
                Assert.Equal(tool.Value.GetProperty("id").GetString(), t.Id);
                Assert.Equal(tool.Value.GetProperty("name").GetString(), t.Name.ToString());
                Assert.Equal(tool.Value.GetProperty("arguments").GetString(), t.Arguments.ToString());
            }
        }

        Assert.Equal(expected.GetProperty("choices").EnumerateObject().Count(), Choices.Count);
        var expectedUsage = expected.GetProperty("usage");
        if (expectedUsage.ValueKind == JsonValueKind.Null)
        {
            Assert.Null(Usage);
        }
        else
        {
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expectedUsage.GetRawText()), Usage), $"{file}: usage differs: {Usage?.ToJsonString()}");
        }

        Assert.Equal(1, DoneCount);
    }

    /// <summary>
    /// Asserts that every choice's token logprobs (content and refusal lists) are the same, in the same order, as
    /// in <paramref name="upstream"/>: merging events must concatenate the lists, not drop or reorder entries.
    /// </summary>
    public void AssertSameLogprobs(ChatStreamSummary upstream, string file)
    {
        foreach (var (index, expected) in upstream.Choices)
        {
            var actual = Choices[index];
            Assert.True(expected.ContentLogprobs.SequenceEqual(actual.ContentLogprobs), $"{file}: choice {index} content logprobs differ");
            Assert.True(expected.RefusalLogprobs.SequenceEqual(actual.RefusalLogprobs), $"{file}: choice {index} refusal logprobs differ");
        }
    }

    private static void AppendTokens(List<string> target, JsonElement logprobs, string name)
    {
        if (logprobs.TryGetProperty(name, out var list) && list.ValueKind == JsonValueKind.Array)
        {
            target.AddRange(list.EnumerateArray().Select(static token => token.GetRawText()));
        }
    }

    private static void AppendText(StringBuilder target, JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            target.Append(value.GetString());
        }
        else
        {
            // The reference summaries were made with Python's json.dumps for non-string content (Mistral arrays).
            PythonJson.Dump(value, target);
        }
    }

    internal sealed class ChoiceSummary
    {
        public StringBuilder Content { get; } = new();
        public StringBuilder Refusal { get; } = new();
        public StringBuilder Reasoning { get; } = new();
        public string? FinishReason { get; set; }
        public List<string> ContentLogprobs { get; } = [];
        public List<string> RefusalLogprobs { get; } = [];
        public SortedDictionary<int, ToolCallSummary> ToolCalls { get; } = [];
    }

    internal sealed class ToolCallSummary
    {
        public string? Id { get; set; }
        public StringBuilder Name { get; } = new();
        public StringBuilder Arguments { get; } = new();
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.StructuredOutput;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// The 15 real tool-argument delta sequences of ../shared/testdata/partial-json/partial_json_cases.json (from the
/// captured streams in ../shared/testdata/llm-sse, Apache-2.0): fed delta by delta, every prefix has a value
/// without an error, values only grow, and the final value equals a normal parse.
/// </summary>
public sealed class PartialJsonStreamTests
{
    public static TheoryData<int> Items()
    {
        var data = new TheoryData<int>();
        if (TestDataPaths.Root is null)
        {
            data.Add(-1);
            return data;
        }

        for (var i = 0; i < Load().GetArrayLength(); i++)
        {
            data.Add(i);
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(Items))]
    public void RealToolArgumentDeltas_EveryPrefixParsesValuesGrowFinalEqualsParse(int index)
    {
        var item = Load()[index];
        var parser = new PartialJsonParser();
        JsonNode? previous = null;
        foreach (var delta in item.GetProperty("deltas").EnumerateArray())
        {
            Assert.True(parser.TryAppend(delta.GetString()), parser.Error?.Message);
            var current = PartialValues.Current(parser);
            var node = current is null ? null : JsonNode.Parse(current);
            Assert.True(PartialValues.Extends(previous, node), $"{previous?.ToJsonString()} -> {current}");
            previous = node;
        }

        if (item.GetProperty("final_is_complete_json").GetBoolean())
        {
            Assert.True(parser.TryComplete(), parser.Error?.Message);
            Assert.True(PartialValues.JsonEquals(PartialValues.Current(parser), JsonNode.Parse(item.GetProperty("final_value").GetRawText())));
        }
        else
        {
            // Cut by max_tokens: still a valid prefix, not a whole document.
            Assert.Null(parser.Error);
            Assert.False(parser.TryComplete());
        }
    }

    private static JsonElement Load() =>
        JsonDocument.Parse(File.ReadAllBytes(TestDataPaths.Get("partial-json", "partial_json_cases.json")))
            .RootElement.GetProperty("real_stream_tool_argument_prefixes").GetProperty("items");
}

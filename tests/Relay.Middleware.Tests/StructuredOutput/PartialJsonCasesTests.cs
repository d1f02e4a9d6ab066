using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// ../shared/testdata/partial-json/partial_json_cases.json: cases from Vercel AI <c>fixJson</c> (Apache-2.0),
/// openai-node <c>partialParse</c> (Apache-2.0), promplate partial-json (MIT), best-effort-json-parser
/// (BSD-2-Clause) and the Anthropic SDK (MIT). The parser follows npm <c>partial-json</c> with <c>Allow.ALL</c>:
/// every case of those semantics passes; every case that expects other semantics is listed in
/// <see cref="Differences"/> with the reason, and the test checks that it does differ.
/// </summary>
public sealed class PartialJsonCasesTests
{
    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        if (TestDataPaths.Root is null)
        {
            data.Add("(test data missing)", 0);
            return data;
        }

        foreach (var group in Load().GetProperty("groups").EnumerateObject())
        {
            for (var i = 0; i < group.Value.GetProperty("cases").GetArrayLength(); i++)
            {
                data.Add(group.Name, i);
            }
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(Cases))]
    public void Case_MatchesAllowAllSemanticsOrIsAListedDifference(string group, int index)
    {
        var c = Load().GetProperty("groups").GetProperty(group).GetProperty("cases")[index];
        var input = c.GetProperty("input").GetString()!;
        var actual = PartialValues.Of(input, out var parser);
        var expectsError = c.TryGetProperty("expected_error", out _);
        var expectsUndefined = c.TryGetProperty("expected_value_defined", out var defined) && !defined.GetBoolean();
        var expected = JsonNode.Parse(c.GetProperty("expected_value").GetRawText());
        var matches = expectsError ? parser.Error is not null
            : expectsUndefined ? parser.Error is null && actual is null
            : PartialValues.JsonEquals(actual, expected);

        var variant = c.TryGetProperty("allow", out var allow) ? allow.GetString()!
            : c.TryGetProperty("mode", out var mode) ? mode.GetString()! : "";
        var listed = Differences.TryGetValue((group, input, variant), out var reason);
        Assert.True(matches != listed,
            $"{group} [{index}] input {JsonSerializer.Serialize(input)}: expected {(expectsError ? "an error" : expected?.ToJsonString() ?? "undefined")}, got {(parser.Error is not null ? "error: " + parser.Error.Message : actual ?? "undefined")}"
            + (listed ? $"; listed as a difference ({reason}) but it matches" : ""));
    }

    internal static readonly Dictionary<(string Group, string Input, string Variant), string> Differences = new()
    {
        [("vercel_ai_fixJson", "12.e", "")] = "'12.e' is no prefix of any JSON text (a digit must follow '.'); npm partial-json rejects it too",
        [("promplate_partial_json", "\"", "~STR")] = "promplate case for a narrower Allow mask, allow = ~STR; this parser is Allow.ALL",
        [("promplate_partial_json", "\" \\x12", "STR")] = "'\\x' is not a JSON escape (System.Text.Json rejects it at the 'x')",
        [("promplate_partial_json", "[\"", "ARR")] = "promplate case for a narrower Allow mask, allow = ARR (strings may not be partial); this parser is Allow.ALL",
        [("promplate_partial_json", "[", "STR")] = "promplate case for a narrower Allow mask, allow = STR; this parser is Allow.ALL",
        [("promplate_partial_json", "[\"\"", "STR")] = "promplate case for a narrower Allow mask, allow = STR; this parser is Allow.ALL",
        [("promplate_partial_json", "{\"\": \"", "OBJ")] = "promplate case for a narrower Allow mask, allow = OBJ (strings may not be partial); this parser is Allow.ALL",
        [("promplate_partial_json", "{\"\":", "STR")] = "promplate case for a narrower Allow mask, allow = STR; this parser is Allow.ALL",
        [("promplate_partial_json", "t", "~BOOL")] = "promplate case for a narrower Allow mask, allow = ~BOOL; this parser is Allow.ALL",
        [("promplate_partial_json", "I", "INFINITY")] = "not JSON (RFC 8259 has no Infinity; System.Text.Json rejects it)",
        [("promplate_partial_json", "-I", "_INFINITY")] = "not JSON (RFC 8259 has no -Infinity; System.Text.Json rejects it)",
        [("promplate_partial_json", "N", "NAN")] = "not JSON (RFC 8259 has no NaN; System.Text.Json rejects it)",
        [("openai_node_partialParse", "[2, 3, 4", "")] = "openai-node vendors partial-json with Allow.ALL except NUM and drops a trailing number; Allow.ALL shows it",
        [("openai_node_partialParse", "[ \"v1\", 2, \"v2\", 3", "")] = "openai-node vendors partial-json with Allow.ALL except NUM and drops a trailing number; Allow.ALL shows it",
        [("openai_node_partialParse", "[1, 2e", "")] = "openai-node vendors partial-json with Allow.ALL except NUM and drops a trailing number; Allow.ALL shows it",
        [("anthropic_sdk_python", "{\"items\": [\"item1\", \"item2\"], \"unfinished_field\": \"incomplete value", "standard (jiter partial_mode=on)")] = "the SDK's standard mode drops a trailing string; Allow.ALL shows it (the SDK's trailing-strings mode, the next case, passes)",
        [("best_effort_json_parser", "-", "")] = "best-effort is lenient and the parser is strict: a lone '-' is no value yet (best-effort shows the string \"-0\")",
        [("best_effort_json_parser", "{\"a\":\"apple\",\"b\":", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "{\"a\":\"apple\",\"b\"", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "{\"a\":\"apple\",\"b", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "{\"a\":\"apple\",\"", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "{\"a\":", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "{\"", "")] = "best-effort keeps a key without a value as undefined; partial-json drops it, and JSON cannot carry undefined",
        [("best_effort_json_parser", "1.2.3.4", "")] = "best-effort is lenient and the parser is strict: not JSON",
        [("best_effort_json_parser", "[1] 2", "")] = "best-effort is lenient and the parser is strict: text after the document",
        [("best_effort_json_parser", "\"line1\nline2\"", "")] = "best-effort is lenient and the parser is strict: a raw line feed inside a string (RFC 8259 requires \\n)",
        [("best_effort_json_parser", "{\"key\":\"line1\n", "")] = "best-effort is lenient and the parser is strict: a raw line feed inside a string (RFC 8259 requires \\n)",
        [("best_effort_json_parser", "'str'", "")] = "best-effort is lenient and the parser is strict: single quotes",
        [("best_effort_json_parser", "str", "")] = "best-effort is lenient and the parser is strict: a bare word",
        [("best_effort_json_parser", "[a,b,c]", "")] = "best-effort is lenient and the parser is strict: bare words",
        [("best_effort_json_parser", "{ 'int' : 42 }", "")] = "best-effort is lenient and the parser is strict: single-quoted key",
        [("best_effort_json_parser", "{ int : 42 }", "")] = "best-effort is lenient and the parser is strict: unquoted key",
        [("best_effort_json_parser", "{\n  \"a\": 1, // comment\n  \"b\": 2\n}", "")] = "best-effort is lenient and the parser is strict: a comment",
    };

    private static JsonElement Load() =>
        JsonDocument.Parse(File.ReadAllBytes(TestDataPaths.Get("partial-json", "partial_json_cases.json"))).RootElement;
}

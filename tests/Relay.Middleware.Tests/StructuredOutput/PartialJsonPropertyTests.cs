using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// Seeded random documents (nested objects and arrays, Unicode, every escape, numbers of every form, varied
/// whitespace) split at random points, as UTF-8 bytes (characters cut in the middle) or as text (surrogate pairs
/// cut in the middle): every prefix is accepted with a value that extends the one before, and the final value
/// equals <see cref="JsonDocument.Parse(string, JsonDocumentOptions)"/> of the whole text.
/// </summary>
public sealed class PartialJsonPropertyTests
{
    private static readonly string[] s_characters =
        ["a", "Z", " ", "é", "日本", "\U0001F600", "\U0001F469\u200D\U0001F467", "\"", "\\", "/", "\n", "\t", "\u0001", "\u2028", "\uFFFF", "-", "{", "]"];

    private static readonly string[] s_numbers =
        ["0", "-0", "7", "-12", "123456789", "12345678901234567890123", "0.5", "-0.001", "3.14159", "1e5", "1E+2", "-2.5e-3", "0e0", "6.02E23", "1.0", "9223372036854775808"];

    public static TheoryData<int> Seeds()
    {
        var data = new TheoryData<int>();
        for (var seed = 0; seed < 200; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void RandomDocument_SplitAtRandomPoints_FinalValueEqualsJsonDocumentParse(int seed)
    {
        var random = new Random(seed);
        var text = new StringBuilder();
        WriteValue(random, text, depth: 0);
        var json = text.ToString();
        using var expected = JsonDocument.Parse(json);

        var parser = new PartialJsonParser();
        JsonNode? previous = null;
        if (seed % 2 == 0)
        {
            var utf8 = Encoding.UTF8.GetBytes(json);
            for (var at = 0; at < utf8.Length;)
            {
                var size = Math.Min(random.Next(1, 12), utf8.Length - at);
                Assert.True(parser.TryAppend(utf8.AsSpan(at, size)), parser.Error?.Message);
                previous = AssertExtends(parser, previous);
                at += size;
            }
        }
        else
        {
            for (var at = 0; at < json.Length;)
            {
                var size = Math.Min(random.Next(1, 12), json.Length - at);
                Assert.True(parser.TryAppend(json.AsSpan(at, size)), parser.Error?.Message);
                previous = AssertExtends(parser, previous);
                at += size;
            }
        }

        Assert.True(parser.TryComplete(), parser.Error?.Message);
        using var actual = JsonDocument.Parse(PartialValues.Current(parser)!);
        Assert.True(JsonElement.DeepEquals(expected.RootElement, actual.RootElement), $"{json}\n{actual.RootElement.GetRawText()}");
    }

    private static JsonNode? AssertExtends(PartialJsonParser parser, JsonNode? previous)
    {
        var current = PartialValues.Current(parser);
        var node = current is null ? null : JsonNode.Parse(current);
        Assert.True(PartialValues.Extends(previous, node), $"{previous?.ToJsonString()} -> {current}");
        return node;
    }

    private static void WriteValue(Random random, StringBuilder text, int depth)
    {
        Whitespace(random, text);
        switch (random.Next(depth < 5 ? 8 : 5))
        {
            case 0:
                text.Append(s_numbers[random.Next(s_numbers.Length)]);
                break;
            case 1:
                text.Append(random.Next(3) switch { 0 => "true", 1 => "false", _ => "null" });
                break;
            case 2 or 3 or 4:
                WriteString(random, text);
                break;
            case 5 or 6:
                text.Append('{');
                var keys = new HashSet<string>();
                for (var i = random.Next(5); i > 0; i--)
                {
                    var key = new StringBuilder();
                    WriteString(random, key);
                    if (!keys.Add(JsonSerializer.Deserialize<string>(key.ToString())!))
                    {
                        continue;
                    }

                    text.Append(keys.Count > 1 ? "," : "");
                    Whitespace(random, text);
                    text.Append(key);
                    Whitespace(random, text);
                    text.Append(':');
                    WriteValue(random, text, depth + 1);
                    Whitespace(random, text);
                }

                Whitespace(random, text);
                text.Append('}');
                break;
            default:
                text.Append('[');
                for (var i = random.Next(5); i >= 0; i--)
                {
                    WriteValue(random, text, depth + 1);
                    Whitespace(random, text);
                    text.Append(i > 0 ? "," : "");
                }

                text.Append(']');
                break;
        }

        Whitespace(random, text);
    }

    private static void WriteString(Random random, StringBuilder text)
    {
        text.Append('"');
        for (var i = random.Next(8); i > 0; i--)
        {
            var s = s_characters[random.Next(s_characters.Length)];
            switch (random.Next(3))
            {
                case 0:
                    // Every character as a \u escape (a surrogate pair as two).
                    foreach (var c in s)
                    {
                        text.Append("\\u").Append(((int)c).ToString(random.Next(2) == 0 ? "x4" : "X4", CultureInfo.InvariantCulture));
                    }

                    break;
                default:
                    foreach (var c in s)
                    {
                        text.Append(c switch
                        {
                            '"' => "\\\"",
                            '\\' => "\\\\",
                            '/' => random.Next(2) == 0 ? "\\/" : "/",
                            '\n' => "\\n",
                            '\t' => "\\t",
                            '\u0001' => "\\u0001",
                            _ => c.ToString(),
                        });
                    }

                    break;
            }
        }

        text.Append('"');
    }

    private static void Whitespace(Random random, StringBuilder text)
    {
        if (random.Next(3) == 0)
        {
            text.Append(" \t\r\n"[random.Next(4)]);
        }
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>Reads partial values from a <see cref="PartialJsonParser"/> and compares them the way the tests need.</summary>
internal static class PartialValues
{
    /// <summary>The parser's current value as JSON text, or null when it has no value yet.</summary>
    public static string? Current(PartialJsonParser parser)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            if (!parser.TryWriteValue(writer))
            {
                return null;
            }
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Feeds <paramref name="text"/> in one piece and gives the partial value's JSON, or null when it has none.</summary>
    public static string? Of(string text, out PartialJsonParser parser)
    {
        parser = new PartialJsonParser();
        parser.TryAppend(Encoding.UTF8.GetBytes(text));
        return parser.Error is null ? Current(parser) : null;
    }

    public static bool JsonEquals(string? actual, JsonNode? expected) =>
        actual is not null && JsonNode.DeepEquals(JsonNode.Parse(actual), expected);

    /// <summary>
    /// True when <paramref name="later"/> extends <paramref name="earlier"/>: same kinds, objects keep their keys,
    /// arrays their items, strings their prefix (numbers may change as digits arrive).
    /// </summary>
    public static bool Extends(JsonNode? earlier, JsonNode? later)
    {
        switch (earlier)
        {
            case null:
                return true;
            case JsonObject o:
                return later is JsonObject lo && o.All(p => lo.ContainsKey(p.Key) && Extends(p.Value, lo[p.Key]));
            case JsonArray a:
                return later is JsonArray la && a.Count <= la.Count && a.Select((item, i) => Extends(item, la[i])).All(x => x);
            default:
                var kind = earlier.GetValueKind();
                if (later is null || later.GetValueKind() != kind)
                {
                    return false;
                }

                return kind switch
                {
                    JsonValueKind.String => later.GetValue<string>().StartsWith(earlier.GetValue<string>(), StringComparison.Ordinal),
                    JsonValueKind.Number => true,
                    _ => JsonNode.DeepEquals(earlier, later),
                };
        }
    }
}

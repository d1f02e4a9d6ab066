using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MockInference;

/// <summary>
/// Writes a JSON document valid against a JSON schema (what a model in structured-output mode produces),
/// deterministic per seed, indented like a model's output, with Unicode strings. Optionally it goes off-schema once,
/// at the first place at or after a byte offset where the requested violation can be made.
/// </summary>
/// <remarks>
/// Keywords followed: <c>type</c> (also a list), <c>properties</c>, <c>required</c> (optional properties appear at
/// random), <c>additionalProperties</c> (no extra properties are ever written), <c>items</c>, <c>minItems</c>,
/// <c>maxItems</c>, <c>enum</c>, <c>const</c>, <c>minLength</c>, <c>maxLength</c>, <c>minimum</c>,
/// <c>maximum</c>, <c>exclusiveMinimum</c>, <c>exclusiveMaximum</c>, <c>anyOf</c>/<c>oneOf</c> (one branch),
/// local <c>$ref</c> (<c>#/$defs/...</c>), and the formats <c>date-time</c>, <c>date</c>, <c>email</c>,
/// <c>uri</c> and <c>uuid</c>. Not followed: <c>pattern</c>, <c>multipleOf</c>, <c>allOf</c>, <c>not</c>.
/// </remarks>
internal sealed class SchemaDocumentGenerator
{
    private const int MaxDepth = 8;

    private static readonly string[] s_phrases =
    [
        "Ada Lovelace", "naïve café", "東京タワー", "résumé", "Grüße aus Köln", "family 👩‍👩‍👧‍👦", "🚀 launch",
        "quote \" and backslash \\", "Привет, мир", "مرحبا", "line one\nline two", "e\u0301 combining", "🇫🇷 Paris",
        "∑ x² ≤ ∞", "plain ascii text", "tab\tseparated",
    ];

    private readonly JsonElement _root;
    private readonly Random _random;
    private readonly JsonViolationKind? _violation;
    private readonly int _violationAtByte;
    private readonly StringBuilder _text = new();
    private int _bytes;

    private SchemaDocumentGenerator(JsonElement root, int seed, JsonViolationKind? violation, int violationAtByte)
    {
        _root = root;
        _random = new Random(seed);
        _violation = violation;
        _violationAtByte = violationAtByte;
    }

    /// <summary>True when the requested violation was written.</summary>
    public bool Violated { get; private set; }

    /// <summary>Writes a document for <paramref name="schema"/>.</summary>
    /// <param name="violation">The violation to make, or null for a valid document.</param>
    /// <param name="violationAtByte">The UTF-8 offset at or after which the violation is made.</param>
    public static string Generate(JsonElement schema, int seed, JsonViolationKind? violation, int violationAtByte, out bool violated)
    {
        var generator = new SchemaDocumentGenerator(schema, seed, violation, violationAtByte);
        generator.WriteValue(schema, depth: 0, indent: 0);
        violated = generator.Violated;
        return generator._text.ToString();
    }

    private void WriteValue(JsonElement schema, int depth, int indent)
    {
        schema = Resolve(schema);
        if (Due(JsonViolationKind.Syntax))
        {
            // What a drifting model writes for a value it does not have.
            Mark("undefined");
            return;
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            WriteString(default, PickPhrase());
            return;
        }

        if (schema.TryGetProperty("const", out var constant))
        {
            WriteChosen(constant);
            return;
        }

        if (schema.TryGetProperty("enum", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
        {
            var first = choices[0];
            if (Due(JsonViolationKind.Enum) && first.ValueKind == JsonValueKind.String)
            {
                Mark(Quote(first.GetString() + " (drifted)"));
                return;
            }

            WriteChosen(choices[_random.Next(choices.GetArrayLength())]);
            return;
        }

        foreach (var keyword in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (schema.TryGetProperty(keyword, out var branches) && branches.ValueKind == JsonValueKind.Array && branches.GetArrayLength() > 0)
            {
                WriteValue(branches[depth >= MaxDepth ? 0 : _random.Next(branches.GetArrayLength())], depth, indent);
                return;
            }
        }

        var type = PickType(schema, depth);
        if (Due(JsonViolationKind.Type))
        {
            Mark(type switch
            {
                "string" => "42",
                "integer" or "number" => "\"forty-two\"",
                "boolean" => "\"yes\"",
                "object" => "[]",
                "array" => "{}",
                _ => "0",
            });
            return;
        }

        switch (type)
        {
            case "object":
                WriteObject(schema, depth, indent);
                break;
            case "array":
                WriteArray(schema, depth, indent);
                break;
            case "integer":
                var (low, high) = Bounds(schema, 0, 1000, integer: true);
                Append(((long)Math.Round(low + (_random.NextDouble() * (high - low)))).ToString(CultureInfo.InvariantCulture));
                break;
            case "number":
                var (min, max) = Bounds(schema, -100, 1000, integer: false);
                Append(Math.Clamp(Math.Round(min + (_random.NextDouble() * (max - min)), 2), min, max).ToString("R", CultureInfo.InvariantCulture));
                break;
            case "boolean":
                Append(_random.Next(2) == 0 ? "true" : "false");
                break;
            case "null":
                Append("null");
                break;
            default:
                WriteString(schema, PickPhrase());
                break;
        }
    }

    private void WriteObject(JsonElement schema, int depth, int indent)
    {
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var requiredList) && requiredList.ValueKind == JsonValueKind.Array)
        {
            foreach (var name in requiredList.EnumerateArray())
            {
                required.Add(name.GetString() ?? "");
            }
        }

        var closed = schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind == JsonValueKind.False;
        Append("{");
        var count = 0;
        if (schema.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in properties.EnumerateObject())
            {
                if (!required.Contains(property.Name) && (depth >= MaxDepth || _random.Next(10) < 3))
                {
                    continue;
                }

                WriteExtraPropertyIfDue(closed, ref count, indent);
                StartProperty(ref count, indent, property.Name);
                WriteValue(property.Value, depth + 1, indent + 1);
            }
        }

        WriteExtraPropertyIfDue(closed, ref count, indent);
        if (count > 0)
        {
            NewLine(indent);
        }

        Append("}");
    }

    private void WriteExtraPropertyIfDue(bool closed, ref int count, int indent)
    {
        if (closed && Due(JsonViolationKind.ExtraProperty))
        {
            StartProperty(ref count, indent, "unexpected_field");
            Mark(Quote("drift"));
        }
    }

    private void StartProperty(ref int count, int indent, string name)
    {
        Append(count++ > 0 ? "," : "");
        NewLine(indent + 1);
        Append(Quote(name) + ": ");
    }

    private void WriteArray(JsonElement schema, int depth, int indent)
    {
        var min = schema.TryGetProperty("minItems", out var minItems) && minItems.TryGetInt32(out var m) ? m : depth >= MaxDepth ? 0 : 1;
        var max = schema.TryGetProperty("maxItems", out var maxItems) && maxItems.TryGetInt32(out var x) ? x : min + 3;
        var count = depth >= MaxDepth ? min : _random.Next(min, Math.Max(min, Math.Min(max, min + 3)) + 1);
        var items = schema.TryGetProperty("items", out var itemSchema) ? itemSchema : default;
        Append("[");
        for (var i = 0; i < count; i++)
        {
            Append(i > 0 ? "," : "");
            NewLine(indent + 1);
            WriteValue(items, depth + 1, indent + 1);
        }

        if (count > 0)
        {
            NewLine(indent);
        }

        Append("]");
    }

    private void WriteString(JsonElement schema, string text)
    {
        var hasSchema = schema.ValueKind == JsonValueKind.Object;
        if (hasSchema && schema.TryGetProperty("format", out var format))
        {
            text = format.GetString() switch
            {
                "date-time" => "2026-11-30T18:00:00Z",
                "date" => "2026-11-30",
                "email" => "ada@example.com",
                "uri" => "https://example.com/ada",
                "uuid" => "6f1c1a9e-2b1d-4c3e-9a7f-0d2b8c4e5f61",
                _ => text,
            };
        }

        var runes = text.EnumerateRunes().ToList();
        var maxLength = hasSchema && schema.TryGetProperty("maxLength", out var maxElement) && maxElement.TryGetInt32(out var max) ? max : (int?)null;
        if (maxLength is int limit && Due(JsonViolationKind.MaxLength))
        {
            // JSON Schema counts code points.
            Mark(Quote(string.Concat(Enumerable.Repeat(text, (limit / Math.Max(1, runes.Count)) + 2))));
            return;
        }

        if (maxLength is int cut && runes.Count > cut)
        {
            runes = runes.Take(cut).ToList();
        }

        var minLength = hasSchema && schema.TryGetProperty("minLength", out var minElement) && minElement.TryGetInt32(out var min) ? min : 0;
        while (runes.Count < minLength)
        {
            runes.Add(new Rune('x'));
        }

        Append(Quote(string.Concat(runes.Select(r => r.ToString()))));
    }

    private void WriteChosen(JsonElement value)
    {
        if (Due(JsonViolationKind.Type))
        {
            Mark(value.ValueKind == JsonValueKind.String ? "42" : "\"forty-two\"");
            return;
        }

        Append(value.ValueKind == JsonValueKind.String ? Quote(value.GetString()!) : value.GetRawText());
    }

    private string PickType(JsonElement schema, int depth)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            if (type.ValueKind == JsonValueKind.String)
            {
                return type.GetString()!;
            }

            if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            {
                var types = type.EnumerateArray().Select(t => t.GetString() ?? "string").ToArray();
                return depth >= MaxDepth && types.Contains("null") ? "null" : types[_random.Next(types.Length)];
            }
        }

        return schema.TryGetProperty("properties", out _) ? "object" : schema.TryGetProperty("items", out _) ? "array" : "string";
    }

    private static (double Low, double High) Bounds(JsonElement schema, double low, double high, bool integer)
    {
        var step = integer ? 1 : 0.01;
        var hasLow = false;
        if (schema.TryGetProperty("minimum", out var minimum) && minimum.TryGetDouble(out var min))
        {
            (low, hasLow) = (min, true);
        }

        if (schema.TryGetProperty("exclusiveMinimum", out var exclusiveMinimum) && exclusiveMinimum.TryGetDouble(out var exMin))
        {
            (low, hasLow) = (exMin + step, true);
        }

        var hasHigh = false;
        if (schema.TryGetProperty("maximum", out var maximum) && maximum.TryGetDouble(out var max))
        {
            (high, hasHigh) = (max, true);
        }

        if (schema.TryGetProperty("exclusiveMaximum", out var exclusiveMaximum) && exclusiveMaximum.TryGetDouble(out var exMax))
        {
            (high, hasHigh) = (exMax - step, true);
        }

        if (integer)
        {
            (low, high) = (Math.Ceiling(low), Math.Floor(high));
        }

        return high >= low ? (low, high) : hasLow && !hasHigh ? (low, low + 1000) : hasHigh && !hasLow ? (high - 1000, high) : (low, low);
    }

    private JsonElement Resolve(JsonElement schema)
    {
        // Local references only (#/$defs/Name), as OpenAI's structured outputs allow; a cycle ends at MaxDepth.
        for (var hops = 0; hops < 16 && schema.ValueKind == JsonValueKind.Object
            && schema.TryGetProperty("$ref", out var reference) && reference.GetString() is { } pointer && pointer.StartsWith('#'); hops++)
        {
            var target = _root;
            foreach (var part in pointer[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = Uri.UnescapeDataString(part).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (target.ValueKind != JsonValueKind.Object || !target.TryGetProperty(name, out target))
                {
                    return default;
                }
            }

            schema = target;
        }

        return schema;
    }

    private string PickPhrase() => s_phrases[_random.Next(s_phrases.Length)];

    private bool Due(JsonViolationKind kind) => _violation == kind && !Violated && _bytes >= _violationAtByte;

    private void Mark(string text)
    {
        Violated = true;
        Append(text);
    }

    private void NewLine(int indent) => Append("\n" + new string(' ', indent * 2));

    private void Append(string text)
    {
        _text.Append(text);
        _bytes += Encoding.UTF8.GetByteCount(text);
    }

    private static string Quote(string text) =>
        "\"" + JsonEncodedText.Encode(text, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value + "\"";
}

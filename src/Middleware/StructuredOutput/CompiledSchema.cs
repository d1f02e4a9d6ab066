using System.Text;
using System.Text.Json;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// One (sub)schema, reduced to what the incremental checker needs. The keywords it checks as the text streams:
/// <c>type</c>, <c>properties</c>, <c>required</c>, <c>additionalProperties</c> (false or a schema),
/// <c>enum</c>, <c>const</c>, <c>maxLength</c>, <c>maxItems</c>, <c>items</c> and local <c>$ref</c>. Annotations
/// (<c>title</c>, <c>description</c>, ...) mean nothing to validation. Any other keyword marks the schema
/// <see cref="NeedsFullValidation"/>: the whole document is then also validated once it is complete.
/// </summary>
internal sealed class CompiledSchema
{
    private static readonly HashSet<string> s_checked = new(StringComparer.Ordinal)
    {
        "type", "properties", "required", "additionalProperties", "enum", "const", "maxLength", "maxItems", "items", "$ref",
    };

    private static readonly HashSet<string> s_ignored = new(StringComparer.Ordinal)
    {
        "$schema", "$id", "$defs", "definitions", "$comment", "title", "description", "default", "examples", "deprecated",
        "readOnly", "writeOnly",
    };

    /// <summary>A schema that accepts anything (<c>true</c>, <c>{}</c>, or one whose checks all wait for the end).</summary>
    public static readonly CompiledSchema Anything = CreateAnything();

    /// <summary>The JSON types allowed; null for any.</summary>
    public JsonTypes? Types { get; private set; }

    public Dictionary<string, CompiledSchema>? Properties { get; private set; }

    public string[] Required { get; private set; } = [];

    /// <summary>The schema of properties not in <see cref="Properties"/>; null when none are allowed.</summary>
    public CompiledSchema? AdditionalProperties { get; private set; } = Anything;

    /// <summary>The allowed values (<c>enum</c>, or <c>const</c> as one value); null for any.</summary>
    public JsonElement[]? Enum { get; private set; }

    /// <summary>The UTF-8 of the string values of <see cref="Enum"/>, for checking a string's prefix as it streams.</summary>
    public byte[][] EnumStrings { get; private set; } = [];

    public int? MaxLength { get; private set; }

    public int? MaxItems { get; private set; }

    public CompiledSchema Items { get; private set; } = Anything;

    /// <summary>True when this schema or one it contains has keywords checked only on the complete document.</summary>
    public bool NeedsFullValidation { get; private set; }

    /// <summary>Compiles a schema; on an unusable one returns null with the reason.</summary>
    public static CompiledSchema? TryCompile(JsonElement schema, out string? error)
    {
        error = null;
        var compiler = new Compiler(schema);
        try
        {
            var compiled = compiler.Compile(schema, "#");
            if (ReferenceEquals(compiled, Anything))
            {
                compiled = new CompiledSchema();
            }

            compiled.NeedsFullValidation = compiler.NeedsFullValidation;
            return compiled;
        }
        catch (InvalidOperationException e)
        {
            error = e.Message;
            return null;
        }
    }

    [Flags]
    internal enum JsonTypes
    {
        None = 0,
        Object = 1,
        Array = 2,
        String = 4,
        Integer = 8,
        Number = 16,
        Boolean = 32,
        Null = 64,
    }

    private sealed class Compiler(JsonElement root)
    {
        private readonly Dictionary<string, CompiledSchema> _references = new(StringComparer.Ordinal);

        public bool NeedsFullValidation { get; private set; }

        public CompiledSchema Compile(JsonElement schema, string location)
        {
            switch (schema.ValueKind)
            {
                case JsonValueKind.True:
                    return Anything;
                case JsonValueKind.False:
                    return new CompiledSchema { Types = JsonTypes.None };
                case JsonValueKind.Object:
                    break;
                default:
                    throw new InvalidOperationException($"The schema at '{location}' must be an object or a boolean.");
            }

            if (schema.TryGetProperty("$ref", out var reference))
            {
                return Reference(reference, location);
            }

            var compiled = new CompiledSchema();
            foreach (var keyword in schema.EnumerateObject())
            {
                var at = $"{location}/{keyword.Name}";
                var value = keyword.Value;
                switch (keyword.Name)
                {
                    case "type":
                        compiled.Types = ReadTypes(value, at);
                        break;
                    case "properties":
                        Require(value.ValueKind == JsonValueKind.Object, at, "an object");
                        compiled.Properties = new Dictionary<string, CompiledSchema>(StringComparer.Ordinal);
                        foreach (var property in value.EnumerateObject())
                        {
                            compiled.Properties[property.Name] = Compile(property.Value, $"{at}/{property.Name}");
                        }

                        break;
                    case "required":
                        Require(value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String), at, "an array of strings");
                        compiled.Required = value.EnumerateArray().Select(v => v.GetString()!).Distinct(StringComparer.Ordinal).ToArray();
                        break;
                    case "additionalProperties":
                        compiled.AdditionalProperties = value.ValueKind == JsonValueKind.False ? null : Compile(value, at);
                        break;
                    case "enum":
                        Require(value.ValueKind == JsonValueKind.Array, at, "an array");
                        compiled.SetEnum([.. value.EnumerateArray().Select(v => v.Clone())]);
                        break;
                    case "const":
                        compiled.SetEnum([value.Clone()]);
                        break;
                    case "maxLength":
                        compiled.MaxLength = ReadCount(value, at);
                        break;
                    case "maxItems":
                        compiled.MaxItems = ReadCount(value, at);
                        break;
                    case "items":
                        compiled.Items = Compile(value, at);
                        break;
                    default:
                        if (!s_ignored.Contains(keyword.Name))
                        {
                            NeedsFullValidation = true;
                        }

                        break;
                }
            }

            return compiled;
        }

        private CompiledSchema Reference(JsonElement reference, string location)
        {
            var pointer = reference.ValueKind == JsonValueKind.String ? reference.GetString()! : "";
            if (!pointer.StartsWith('#'))
            {
                throw new InvalidOperationException($"The $ref at '{location}' must be a local reference ('#/$defs/...'); '{pointer}' is not.");
            }

            if (_references.TryGetValue(pointer, out var known))
            {
                return known;
            }

            var target = root;
            foreach (var part in pointer[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var name = Uri.UnescapeDataString(part).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
                if (target.ValueKind != JsonValueKind.Object || !target.TryGetProperty(name, out target))
                {
                    throw new InvalidOperationException($"The $ref '{pointer}' at '{location}' points to nothing.");
                }
            }

            // Registered before it is compiled, so a recursive schema refers to itself instead of recursing forever.
            var compiled = new CompiledSchema();
            _references[pointer] = compiled;
            compiled.CopyFrom(Compile(target, pointer));
            return compiled;
        }

        private static JsonTypes ReadTypes(JsonElement value, string at)
        {
            var names = value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().ToArray() : [value];
            var types = JsonTypes.None;
            foreach (var name in names)
            {
                types |= name.ValueKind != JsonValueKind.String ? JsonTypes.None : name.GetString() switch
                {
                    "object" => JsonTypes.Object,
                    "array" => JsonTypes.Array,
                    "string" => JsonTypes.String,
                    "integer" => JsonTypes.Integer,
                    "number" => JsonTypes.Number,
                    "boolean" => JsonTypes.Boolean,
                    "null" => JsonTypes.Null,
                    _ => throw new InvalidOperationException($"'{name}' at '{at}' is not a JSON Schema type."),
                };
                Require(name.ValueKind == JsonValueKind.String, at, "a type name or an array of them");
            }

            return types;
        }

        private static int ReadCount(JsonElement value, string at)
        {
            Require(value.TryGetInt32(out var count) && count >= 0, at, "a non-negative integer");
            return count;
        }

        private static void Require(bool condition, string at, string what)
        {
            if (!condition)
            {
                throw new InvalidOperationException($"'{at}' must be {what}.");
            }
        }
    }

    private static CompiledSchema CreateAnything()
    {
        // Its own defaults would point at itself before it exists.
        var anything = new CompiledSchema();
        anything.AdditionalProperties = anything;
        anything.Items = anything;
        return anything;
    }

    private void SetEnum(JsonElement[] values)
    {
        Enum = Enum is null ? values : [.. Enum.Where(e => values.Any(v => JsonElement.DeepEquals(e, v)))];
        EnumStrings = [.. Enum.Where(e => e.ValueKind == JsonValueKind.String).Select(e => Encoding.UTF8.GetBytes(e.GetString()!))];
    }

    private void CopyFrom(CompiledSchema other)
    {
        Types = other.Types;
        Properties = other.Properties;
        Required = other.Required;
        AdditionalProperties = other.AdditionalProperties;
        Enum = other.Enum;
        EnumStrings = other.EnumStrings;
        MaxLength = other.MaxLength;
        MaxItems = other.MaxItems;
        Items = other.Items;
    }
}

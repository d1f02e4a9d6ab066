using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// Checks a document against a <see cref="CompiledSchema"/> while it streams, from a
/// <see cref="PartialJsonParser"/>'s events, and reports the first violation that no continuation can repair: a
/// value of the wrong type (known from its first byte), a property that <c>additionalProperties: false</c> does not
/// allow (known when its name closes), a string that no <c>enum</c> value starts with (known at the first
/// character that leaves them all), a string past <c>maxLength</c> or an array past <c>maxItems</c> (at the first
/// character or item too many), a non-integer for <c>integer</c> and a missing <c>required</c> property (when the
/// number or the object ends). Work per event is bounded by the event's size; no part of the text is re-read.
/// </summary>
internal sealed class IncrementalSchemaValidator(CompiledSchema root) : IJsonStreamObserver
{
    private readonly List<Container> _open = [];
    private CompiledSchema _nextSchema = root;
    private string? _nextName;
    private CompiledSchema? _scalar;
    private string? _scalarSegment;
    private bool[] _enumAlive = [];
    private int _stringBytes;
    private int _codePoints;

    /// <summary>The first violation; null while the document can still be valid.</summary>
    public SchemaViolation? Violation { get; private set; }

    /// <summary>The JSON Pointer of the innermost open container (where a syntax error stands).</summary>
    public string CurrentPointer => Pointer(null);

    public void OnValueStart(JsonValueKind kind)
    {
        if (Violation is not null)
        {
            return;
        }

        string? segment = null;
        var schema = _nextSchema;
        if (_open.Count > 0 && _open[^1] is { IsObject: false } array)
        {
            segment = array.Count.ToString(CultureInfo.InvariantCulture);
            schema = array.Schema.Items;
            if (++array.Count > array.Schema.MaxItems)
            {
                Fail(null, $"The array has more than the {array.Schema.MaxItems} items that 'maxItems' allows.");
                return;
            }
        }
        else if (_open.Count > 0)
        {
            segment = _nextName;
        }

        if (schema.Types is { } types && (types & TypesOf(kind)) == 0)
        {
            Fail(segment, $"Expected {Describe(types)}, but the value is {Describe(TypesOf(kind) & ~CompiledSchema.JsonTypes.Integer)}.");
            return;
        }

        if (schema.Enum is { } values && !values.Any(v => SameKind(v.ValueKind, kind)))
        {
            Fail(segment, "The value is not one of the values that 'enum' allows.");
            return;
        }

        if (kind is JsonValueKind.Object or JsonValueKind.Array)
        {
            _open.Add(new Container(schema, kind == JsonValueKind.Object, segment));
            return;
        }

        _scalar = schema;
        _scalarSegment = segment;
        if (kind == JsonValueKind.String)
        {
            _stringBytes = 0;
            _codePoints = 0;
            if (schema.Enum is not null)
            {
                _enumAlive = new bool[schema.EnumStrings.Length];
                Array.Fill(_enumAlive, true);
            }
        }
    }

    public void OnPropertyName(ReadOnlySpan<byte> utf8Name)
    {
        if (Violation is not null || _open.Count == 0)
        {
            return;
        }

        var container = _open[^1];
        var name = Encoding.UTF8.GetString(utf8Name);
        (container.Seen ??= new HashSet<string>(StringComparer.Ordinal)).Add(name);
        _nextName = name;
        var schema = container.Schema.Properties?.GetValueOrDefault(name) ?? container.Schema.AdditionalProperties;
        if (schema is null)
        {
            Fail(name, $"The property '{name}' is not allowed ('additionalProperties' is false).");
            return;
        }

        _nextSchema = schema;
    }

    public void OnStringChunk(ReadOnlySpan<byte> utf8)
    {
        if (Violation is not null || _scalar is not { } schema)
        {
            return;
        }

        // JSON Schema counts code points: every byte that does not continue a UTF-8 sequence starts one.
        _codePoints += utf8.Length - CountContinuationBytes(utf8);
        if (_codePoints > schema.MaxLength)
        {
            Fail(_scalarSegment, $"The string is longer than the {schema.MaxLength} characters that 'maxLength' allows.");
            return;
        }

        if (schema.Enum is not null)
        {
            var anyAlive = false;
            for (var i = 0; i < _enumAlive.Length; i++)
            {
                var candidate = schema.EnumStrings[i];
                _enumAlive[i] = _enumAlive[i] && _stringBytes + utf8.Length <= candidate.Length
                    && candidate.AsSpan(_stringBytes, utf8.Length).SequenceEqual(utf8);
                anyAlive |= _enumAlive[i];
            }

            if (!anyAlive)
            {
                Fail(_scalarSegment, "No value that 'enum' allows starts with this string.");
                return;
            }
        }

        _stringBytes += utf8.Length;
    }

    public void OnValueEnd(JsonValueKind kind, ReadOnlySpan<byte> numberText)
    {
        if (Violation is not null)
        {
            return;
        }

        if (kind is JsonValueKind.Object or JsonValueKind.Array)
        {
            var container = _open[^1];
            if (container.IsObject && container.Schema.Required.FirstOrDefault(r => container.Seen?.Contains(r) != true) is { } missing)
            {
                Fail(null, $"The required property '{missing}' is missing.");
                return;
            }

            _open.RemoveAt(_open.Count - 1);
            return;
        }

        var schema = _scalar!;
        _scalar = null;
        if (kind == JsonValueKind.String && schema.Enum is not null
            && !schema.EnumStrings.Where((candidate, i) => _enumAlive[i] && candidate.Length == _stringBytes).Any())
        {
            Fail(_scalarSegment, "The value is not one of the values that 'enum' allows.");
        }
        else if (kind == JsonValueKind.Number)
        {
            var types = schema.Types ?? CompiledSchema.JsonTypes.Number;
            using var number = JsonDocument.Parse(numberText.ToArray());
            if ((types & CompiledSchema.JsonTypes.Number) == 0 && !IsInteger(number.RootElement))
            {
                Fail(_scalarSegment, "Expected an integer.");
            }
            else if (schema.Enum is { } values && !values.Any(v => JsonElement.DeepEquals(v, number.RootElement)))
            {
                Fail(_scalarSegment, "The value is not one of the values that 'enum' allows.");
            }
        }
    }

    private static bool IsInteger(JsonElement number) =>
        number.TryGetInt64(out _) || (number.TryGetDouble(out var value) && double.IsFinite(value) && Math.Floor(value) == value);

    private static int CountContinuationBytes(ReadOnlySpan<byte> utf8)
    {
        var count = 0;
        foreach (var b in utf8)
        {
            count += (b & 0xC0) == 0x80 ? 1 : 0;
        }

        return count;
    }

    private static bool SameKind(JsonValueKind value, JsonValueKind kind) =>
        value == kind || (value is JsonValueKind.True or JsonValueKind.False && kind is JsonValueKind.True or JsonValueKind.False);

    private static CompiledSchema.JsonTypes TypesOf(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => CompiledSchema.JsonTypes.Object,
        JsonValueKind.Array => CompiledSchema.JsonTypes.Array,
        JsonValueKind.String => CompiledSchema.JsonTypes.String,

        // An integer is a number, and a number may turn out to be an integer: which, its end tells.
        JsonValueKind.Number => CompiledSchema.JsonTypes.Number | CompiledSchema.JsonTypes.Integer,
        JsonValueKind.True or JsonValueKind.False => CompiledSchema.JsonTypes.Boolean,
        _ => CompiledSchema.JsonTypes.Null,
    };

    private static string Describe(CompiledSchema.JsonTypes types) =>
        types == CompiledSchema.JsonTypes.None ? "nothing (the schema is false)"
            : string.Join(" or ", types.ToString().ToLowerInvariant().Split(", "));

    private void Fail(string? segment, string message) => Violation = new SchemaViolation(Pointer(segment), message);

    private string Pointer(string? segment)
    {
        // RFC 6901: "~" is written "~0" and "/" is written "~1" in a reference token.
        var pointer = new StringBuilder();
        foreach (var container in _open)
        {
            Append(container.Segment);
        }

        Append(segment);
        return pointer.ToString();

        void Append(string? token)
        {
            if (token is not null)
            {
                pointer.Append('/').Append(token.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal));
            }
        }
    }

    private sealed class Container(CompiledSchema schema, bool isObject, string? segment)
    {
        public CompiledSchema Schema { get; } = schema;

        public bool IsObject { get; } = isObject;

        public string? Segment { get; } = segment;

        public int Count { get; set; }

        public HashSet<string>? Seen { get; set; }
    }
}

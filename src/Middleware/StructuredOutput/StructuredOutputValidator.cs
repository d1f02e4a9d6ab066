using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Json.Schema;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// Validates a model's structured output while it streams: its syntax (a <see cref="PartialJsonParser"/>) and its
/// schema (an <see cref="IncrementalSchemaValidator"/>), so a stream that has gone off-schema can be stopped at the
/// first violation instead of being paid for to the end. Keywords the incremental checker does not handle are
/// checked by JsonSchema.Net on the complete document.
/// </summary>
internal sealed class StructuredOutputValidator
{
    private const int MaxCachedSchemas = 256;

    private static readonly EvaluationOptions s_evaluation = new() { OutputFormat = OutputFormat.List };

    // Compiled schemas by their text: an application sends the same few schemas with every request, and building one
    // (JsonSchema.Net's Build above all) costs more than validating a short reply. Both forms are read-only once
    // built (JsonSchema.Net 8 splits build from evaluation so that a built schema is reused); the state of one
    // document lives in its IncrementalSchemaValidator and PartialJsonParser.
    private static readonly ConcurrentDictionary<string, (CompiledSchema Compiled, JsonSchema Full)> s_built = new(StringComparer.Ordinal);

    private readonly IncrementalSchemaValidator _incremental;
    private readonly JsonSchema? _fullSchema;

    private StructuredOutputValidator(CompiledSchema compiled, JsonSchema? fullSchema)
    {
        _incremental = new IncrementalSchemaValidator(compiled);
        _fullSchema = compiled.NeedsFullValidation ? fullSchema : null;
        Parser = new PartialJsonParser(PartialJsonParser.DefaultMaxDepth, _incremental);
    }

    /// <summary>The parser of the document, whose partial value can be shown as well.</summary>
    public PartialJsonParser Parser { get; }

    /// <summary>The first violation; null while the document can still be valid.</summary>
    public SchemaViolation? Violation { get; private set; }

    /// <summary>
    /// Creates a validator for a <c>json_schema</c> response format's schema, or for <c>json_object</c> (a null
    /// <paramref name="schema"/>: the output must be a JSON object). An unusable schema gives null and the reason.
    /// </summary>
    public static StructuredOutputValidator? TryCreate(JsonElement? schema, out string? error)
    {
        if (schema is not { } s)
        {
            using var objectOnly = JsonDocument.Parse("""{"type":"object"}""");
            return new StructuredOutputValidator(CompiledSchema.TryCompile(objectOnly.RootElement, out error)!, null);
        }

        var key = s.GetRawText();
        if (s_built.TryGetValue(key, out var built))
        {
            error = null;
            return new StructuredOutputValidator(built.Compiled, built.Full);
        }

        // The cached forms keep elements of the schema: their own copy, whatever document the caller disposes.
        s = s.Clone();
        var compiled = CompiledSchema.TryCompile(s, out error);
        if (compiled is null)
        {
            return null;
        }

        JsonSchema full;
        try
        {
            // A registry of its own: schemas of different requests may share an $id.
            full = JsonSchema.Build(s, new BuildOptions { SchemaRegistry = new SchemaRegistry() });
        }
        catch (Exception e) when (e is JsonSchemaException or JsonException or InvalidOperationException or ArgumentException or RefResolutionException)
        {
            error = e.Message;
            return null;
        }

        if (s_built.Count >= MaxCachedSchemas)
        {
            // Bounded: a client sending a new schema with every request gets no cache, not unbounded memory.
            s_built.Clear();
        }

        s_built.TryAdd(key, (compiled, full));
        return new StructuredOutputValidator(compiled, full);
    }

    /// <summary>Feeds the next piece of the output (UTF-8).</summary>
    /// <returns>False at the first violation (now or earlier): <see cref="Violation"/> says where and what.</returns>
    public bool TryAppend(ReadOnlySpan<byte> utf8)
    {
        if (Violation is not null)
        {
            return false;
        }

        if (!Parser.TryAppend(utf8))
        {
            Violation = new SchemaViolation(_incremental.CurrentPointer, $"The output is not valid JSON: {Parser.Error!.Message} (byte {Parser.Error.BytePosition}).");
            return false;
        }

        Violation = _incremental.Violation;
        return Violation is null;
    }

    /// <summary>Says that the output has ended; checks that it is complete and, where needed, validates it in full.</summary>
    /// <returns>False when the complete output is invalid: <see cref="Violation"/> says where and what.</returns>
    public bool TryComplete()
    {
        if (Violation is not null)
        {
            return false;
        }

        if (!Parser.TryComplete())
        {
            Violation = new SchemaViolation(_incremental.CurrentPointer, $"The output is not valid JSON: {Parser.Error!.Message} (byte {Parser.Error.BytePosition}).");
            return false;
        }

        Violation = _incremental.Violation;
        if (Violation is null && _fullSchema is not null)
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                Parser.TryWriteValue(writer);
            }

            using var document = JsonDocument.Parse(buffer.WrittenMemory);
            var results = _fullSchema.Evaluate(document.RootElement, s_evaluation);
            if (!results.IsValid)
            {
                var failed = results.Details?.FirstOrDefault(d => d.Errors is { Count: > 0 }) ?? results;
                Violation = new SchemaViolation(
                    failed.InstanceLocation.ToString(),
                    failed.Errors?.Values.FirstOrDefault() ?? "The output does not match the schema.");
            }
        }

        return Violation is null;
    }
}

using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>
/// <c>x-mock-reply: json</c> with a <c>response_format</c> of type <c>json_schema</c>: the reply is a document valid
/// against the request's schema (<see cref="SchemaDocumentGenerator"/>), tokenized like the text replies, unless
/// <c>x-mock-json-violation</c> makes it go off-schema at token <c>x-mock-json-violation-at-token</c> (or the first
/// place after it where that violation can be made; the first such place in the document when there is none after).
/// </summary>
internal sealed class StructuredReply
{
    public const string ViolationHeader = "x-mock-json-violation";
    public const string ViolationAtTokenHeader = "x-mock-json-violation-at-token";

    private readonly JsonElement _schema;
    private readonly JsonViolationKind? _violation;
    private readonly int _violationAtToken;
    private readonly ReplyFactory _factory;

    private StructuredReply(JsonElement schema, JsonViolationKind? violation, int violationAtToken, ReplyFactory factory)
    {
        _schema = schema;
        _violation = violation;
        _violationAtToken = violationAtToken;
        _factory = factory;
    }

    /// <summary>
    /// Reads the request's schema and the violation headers. Null (and no error) when the reply is not a structured
    /// one; an error names the offending header.
    /// </summary>
    public static StructuredReply? TryCreate(
        IHeaderDictionary headers, MockKnobs knobs, ReadOnlyMemory<byte> body, ReplyFactory factory, out string? badHeader)
    {
        badHeader = null;
        JsonViolationKind? violation = headers[ViolationHeader].ToString().Trim().ToLowerInvariant() switch
        {
            "" => null,
            "syntax" => JsonViolationKind.Syntax,
            "type" => JsonViolationKind.Type,
            "extra-property" => JsonViolationKind.ExtraProperty,
            "enum" => JsonViolationKind.Enum,
            "max-length" => JsonViolationKind.MaxLength,
            _ => (JsonViolationKind)(-1),
        };
        var atToken = 0;
        var atTokenText = headers[ViolationAtTokenHeader].ToString();
        if (atTokenText.Length > 0 && (!int.TryParse(atTokenText, NumberStyles.Integer, CultureInfo.InvariantCulture, out atToken) || atToken < 0))
        {
            badHeader = ViolationAtTokenHeader;
            return null;
        }

        var schema = knobs.Reply == ReplyMode.Json ? ReadSchema(body) : null;
        if (violation == (JsonViolationKind)(-1) || (violation is not null && schema is null))
        {
            // A violation needs a schema to break (and x-mock-reply: json to write it).
            badHeader = ViolationHeader;
            return null;
        }

        return schema is { } s ? new StructuredReply(s, violation, atToken, factory) : null;
    }

    /// <summary>Builds one choice's reply.</summary>
    public TokenizedReply Build(int seed, int? limit)
    {
        var valid = SchemaDocumentGenerator.Generate(_schema, seed, violation: null, 0, out _);
        if (_violation is not JsonViolationKind violation)
        {
            return _factory.Tokenize(valid, limit);
        }

        // The violation starts at the byte where token N of the valid document starts, so the text before it is
        // the same document a well-behaved model would have written.
        var pieces = _factory.Tokenize(valid, null).Pieces;
        var at = 0;
        for (var i = 0; i < Math.Min(_violationAtToken, pieces.Length); i++)
        {
            at += pieces[i].Length;
        }

        var text = SchemaDocumentGenerator.Generate(_schema, seed, violation, at, out var violated);
        if (!violated)
        {
            text = SchemaDocumentGenerator.Generate(_schema, seed, violation, 0, out _);
        }

        return _factory.Tokenize(text, limit);
    }

    private static JsonElement? ReadSchema(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("response_format", out var format)
                && format.ValueKind == JsonValueKind.Object
                && format.TryGetProperty("type", out var type) && type.ValueEquals("json_schema"u8)
                && format.TryGetProperty("json_schema", out var jsonSchema) && jsonSchema.ValueKind == JsonValueKind.Object
                && jsonSchema.TryGetProperty("schema", out var schema) && schema.ValueKind == JsonValueKind.Object
                ? schema.Clone()
                : null;
        }
        catch (JsonException)
        {
            // CompletionRequest.Parse answers an unreadable body.
            return null;
        }
    }
}

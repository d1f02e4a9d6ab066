using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Relay.Middleware.Requests;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// What a streaming chat request asks of its structured output: the partial values to show
/// (<c>stream_options.partial_json</c>) and the schema to hold the reply to (<c>response_format</c>, when
/// validation is on for the route or the request, <c>stream_options.validate_schema</c>).
/// </summary>
internal sealed class StructuredOutputRequest
{
    // A json_schema format without a schema holds the reply to JSON syntax only.
    private static readonly JsonElement s_anything = JsonElement.Parse("true");

    private readonly JsonElement? _schema;
    private StructuredOutputValidator? _first;

    private StructuredOutputRequest(PartialJsonMode partialJson, bool isJson, JsonElement? schema, StructuredOutputValidator? first)
    {
        PartialJson = partialJson;
        IsJsonReply = isJson;
        _schema = schema;
        _first = first;
        Validates = first is not null;
    }

    /// <summary>Which text carries <c>parsed</c>; <see cref="PartialJsonMode.Content"/> only for a JSON reply.</summary>
    public PartialJsonMode PartialJson { get; }

    /// <summary>Whether the reply's content is JSON (<c>response_format</c> <c>json_schema</c> or <c>json_object</c>).</summary>
    public bool IsJsonReply { get; }

    /// <summary>Whether the content is validated as it streams.</summary>
    public bool Validates { get; }

    /// <summary>
    /// Reads the Relay options (<c>partial_json</c>, <c>validate_schema</c>) of <paramref name="streamOptions"/> and
    /// the request's <c>response_format</c>. Invalid options and unusable schemas are a failure, reported before the
    /// upstream is called. Returns null (and no failure) when the request asks for nothing Relay does here.
    /// </summary>
    /// <param name="root">The request body.</param>
    /// <param name="streamOptions">Its <c>stream_options</c> object, if any.</param>
    /// <param name="stream">Whether the request asks for a stream (only streams are read).</param>
    /// <param name="routeValidates">The route's <c>StructuredOutput:Validate</c>.</param>
    /// <param name="failure">The 400 to answer, if any.</param>
    /// <param name="relayOnly">Set when <paramref name="streamOptions"/> holds one of these options (to be removed).</param>
    public static StructuredOutputRequest? TryRead(
        JsonElement root, JsonElement? streamOptions, bool stream, bool routeValidates, out ChatRequestInspector.Failure? failure, out bool relayOnly)
    {
        failure = null;
        relayOnly = false;
        var mode = PartialJsonMode.None;
        bool? validate = null;
        if (streamOptions is { } options)
        {
            if (options.TryGetProperty("partial_json", out var partial))
            {
                relayOnly = true;
                mode = partial.ValueKind switch
                {
                    JsonValueKind.True => PartialJsonMode.Content,
                    JsonValueKind.False => PartialJsonMode.None,
                    JsonValueKind.String when partial.ValueEquals("tool_calls"u8) => PartialJsonMode.ToolCalls,
                    JsonValueKind.String when partial.ValueEquals("all"u8) => PartialJsonMode.All,
                    _ => (PartialJsonMode)(-1),
                };
                if (mode < 0)
                {
                    failure = Invalid("stream_options.partial_json must be true, false, \"tool_calls\" or \"all\".", "stream_options.partial_json");
                    return null;
                }
            }

            if (options.TryGetProperty("validate_schema", out var validateOption))
            {
                relayOnly = true;
                if (validateOption.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    failure = Invalid("stream_options.validate_schema must be true or false.", "stream_options.validate_schema");
                    return null;
                }

                validate = validateOption.ValueKind == JsonValueKind.True;
            }
        }

        if (!stream)
        {
            // Relay reads only streams; the options above are still checked and removed.
            return null;
        }

        var isJson = false;
        JsonElement? schema = null;
        if (root.TryGetProperty("response_format", out var format) && format.ValueKind == JsonValueKind.Object
            && format.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String)
        {
            if (type.ValueEquals("json_object"u8))
            {
                isJson = true;
            }
            else if (type.ValueEquals("json_schema"u8))
            {
                isJson = true;
                schema = format.TryGetProperty("json_schema", out var js) && js.ValueKind == JsonValueKind.Object
                    && js.TryGetProperty("schema", out var s) ? s.Clone() : s_anything;
            }
        }

        if (!isJson)
        {
            mode &= ~PartialJsonMode.Content;
        }

        StructuredOutputValidator? first = null;
        if (isJson && (validate ?? routeValidates))
        {
            first = StructuredOutputValidator.TryCreate(schema, out var error);
            if (first is null)
            {
                failure = Invalid($"response_format.json_schema.schema cannot be used: {error}", "response_format.json_schema.schema");
                return null;
            }
        }

        return mode == PartialJsonMode.None && first is null ? null : new StructuredOutputRequest(mode, isJson, schema, first);
    }

    /// <summary>A validator for one choice's content, or null when the content is not validated.</summary>
    public StructuredOutputValidator? CreateValidator()
    {
        if (_first is { } first)
        {
            // The one compiled when the request was read (most streams have one choice).
            _first = null;
            return first;
        }

        return IsJsonReply && Validates ? StructuredOutputValidator.TryCreate(_schema, out _) : null;
    }

    /// <summary>The state of one stream.</summary>
    public StructuredStream CreateStream() => new(this);

    private static ChatRequestInspector.Failure Invalid(string message, string param)
        => new(StatusCodes.Status400BadRequest, message, "invalid_value", param);
}

using System.Text.Encodings.Web;
using System.Text.Json;
using Relay.Middleware.Cadence;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.StructuredOutput;

/// <summary>
/// The structured output of one chat stream, fed by its <see cref="StreamEventPipeline"/>: every upstream chunk
/// goes through <see cref="OnChunk"/>, which decodes each choice's content (and tool-call arguments, when asked)
/// into an incremental parser and schema validator as the token arrives, so a violation is seen at the token that
/// made it; each flushed event of such a text asks <see cref="Parsed"/> for its partial value, so there is at most
/// one per flush and the cadence bounds the cost (product spec, "Streaming structured output").
/// </summary>
internal sealed class StructuredStream : IDisposable
{
    private readonly StructuredOutputRequest _request;
    private readonly PooledByteBuffer _decoded = new(256);
    private readonly PooledByteBuffer _parsed = new(256);
    private readonly Utf8JsonWriter _writer;
    private Choice?[] _choices = new Choice?[1];

    public StructuredStream(StructuredOutputRequest request)
    {
        _request = request;

        // As the pipeline writes the text beside it: non-ASCII stays raw.
        _writer = new Utf8JsonWriter(_parsed, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });
    }

    /// <summary>The first violation of a validated choice; the stream must end with a <c>schema_violation</c> error.</summary>
    public SchemaViolation? Violation { get; private set; }

    /// <summary>The choice whose content broke its schema.</summary>
    public int ViolationChoice { get; private set; }

    /// <summary>Whether events of this kind carry a partial value (so they cannot be forwarded as they came).</summary>
    public bool WantsParsed(DeltaKind kind) => kind switch
    {
        DeltaKind.Content => (_request.PartialJson & PartialJsonMode.Content) != 0,
        DeltaKind.ToolArguments => (_request.PartialJson & PartialJsonMode.ToolCalls) != 0,
        _ => false,
    };

    /// <summary>Feeds one upstream chunk's text; false once the output has broken its schema (drop this chunk and end).</summary>
    public bool OnChunk(ReadOnlySpan<byte> data, in ChatChunkInfo info)
    {
        if (Violation is not null)
        {
            return false;
        }

        if (info.ChoiceCount != 1 || (uint)info.ChoiceIndex >= 128 || info.HasError)
        {
            return true;
        }

        var choice = GetChoice(info.ChoiceIndex);
        if (info.Content.IsNonEmpty && choice.Content is not null)
        {
            _decoded.Clear();
            LenientJsonStringDecoder.Decode(info.Content.Inner(data), ref choice.ContentCarry, _decoded);
            choice.SawContent = true;
            if (!choice.Content.TryAppend(_decoded.WrittenSpan))
            {
                return Fail(choice, info.ChoiceIndex);
            }
        }

        if (info.ToolArguments.IsNonEmpty && info.ToolCallCount == 1 && WantsParsed(DeltaKind.ToolArguments))
        {
            var tool = choice.GetTool(info.ToolIndex);
            if (!tool.Failed)
            {
                _decoded.Clear();
                LenientJsonStringDecoder.Decode(info.ToolArguments.Inner(data), ref tool.Carry, _decoded);

                // Arguments are not validated: a tool call whose arguments stop being JSON just stops showing them.
                tool.Failed = !tool.Parser.TryAppend(_decoded.WrittenSpan);
            }
        }

        if (info.HasFinishReason && choice.SawContent && choice.Content is { Validator: not null } && IsStop(data)
            && !choice.Content.TryComplete())
        {
            // A reply cut by max_tokens ("length") or a content filter says so in its finish_reason; a stop must be whole.
            return Fail(choice, info.ChoiceIndex);
        }

        return true;
    }

    /// <summary>
    /// The <c>,"parsed":value</c> member to write after a flushed text of <paramref name="kind"/>, or nothing (no value
    /// yet, not asked for, or the text stopped being JSON).
    /// </summary>
    public ReadOnlySpan<byte> Parsed(int choiceIndex, DeltaKind kind, int toolIndex)
    {
        if (!WantsParsed(kind) || (uint)choiceIndex >= (uint)_choices.Length || _choices[choiceIndex] is not { } choice)
        {
            return default;
        }

        PartialJsonParser? parser = null;
        if (kind == DeltaKind.Content)
        {
            parser = choice.Content is { Failed: false } content ? content.Parser : null;
        }
        else if (choice.FindTool(toolIndex) is { Failed: false } tool)
        {
            parser = tool.Parser;
        }

        if (parser is null)
        {
            return default;
        }

        _parsed.Clear();
        _parsed.Append(",\"parsed\":"u8);
        var prefix = _parsed.Length;
        _writer.Reset(_parsed);
        if (!parser.TryWriteValue(_writer))
        {
            return default;
        }

        _writer.Flush();
        return _parsed.Length > prefix ? _parsed.WrittenSpan : default;
    }

    public void Dispose()
    {
        _decoded.Dispose();
        _parsed.Dispose();
        _writer.Dispose();
    }

    private bool Fail(Choice choice, int index)
    {
        Violation = choice.Content!.Violation;
        ViolationChoice = index;
        return Violation is null;
    }

    private static bool IsStop(ReadOnlySpan<byte> data)
    {
        var reader = new Utf8JsonReader(data);
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                return reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("stop"u8);
            }
        }

        return false;
    }

    private Choice GetChoice(int index)
    {
        if (index >= _choices.Length)
        {
            Array.Resize(ref _choices, Math.Max(index + 1, _choices.Length * 2));
        }

        return _choices[index] ??= new Choice(_request);
    }

    /// <summary>One choice: its content document and its tool calls' arguments.</summary>
    private sealed class Choice(StructuredOutputRequest request)
    {
        public ContentDocument? Content { get; } = request.IsJsonReply && (request.Validates || (request.PartialJson & PartialJsonMode.Content) != 0)
            ? new ContentDocument(request.CreateValidator())
            : null;

        public Utf8Carry ContentCarry;

        public bool SawContent;

        private List<ToolArguments>? _tools;

        public ToolArguments GetTool(int index)
        {
            if (FindTool(index) is { } found)
            {
                return found;
            }

            var tool = new ToolArguments(index);
            (_tools ??= []).Add(tool);
            return tool;
        }

        public ToolArguments? FindTool(int index)
        {
            if (_tools is not null)
            {
                foreach (var tool in _tools)
                {
                    if (tool.Index == index)
                    {
                        return tool;
                    }
                }
            }

            return null;
        }
    }

    /// <summary>A choice's content: validated when a validator is given, else only parsed.</summary>
    private sealed class ContentDocument(StructuredOutputValidator? validator)
    {
        public StructuredOutputValidator? Validator { get; } = validator;

        public PartialJsonParser Parser { get; } = validator?.Parser ?? new PartialJsonParser();

        /// <summary>Not JSON any more (only when not validated: a validated one ends the stream).</summary>
        public bool Failed { get; private set; }

        public SchemaViolation? Violation => Validator?.Violation;

        public bool TryAppend(ReadOnlySpan<byte> utf8)
        {
            if (Validator is not null)
            {
                return Validator.TryAppend(utf8);
            }

            Failed |= !Parser.TryAppend(utf8);
            return true;
        }

        public bool TryComplete() => Validator is null || Validator.TryComplete();
    }

    /// <summary>One tool call's arguments.</summary>
    private sealed class ToolArguments(int index)
    {
        public int Index { get; } = index;

        public PartialJsonParser Parser { get; } = new();

        public Utf8Carry Carry;

        public bool Failed;
    }
}

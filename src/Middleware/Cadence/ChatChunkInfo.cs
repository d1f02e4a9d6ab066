namespace Relay.Middleware.Cadence;

/// <summary>What the pipeline needs to know about one <c>chat.completion.chunk</c>, found in one reader pass.</summary>
internal struct ChatChunkInfo
{
    /// <summary>Number of elements of <c>choices</c>; -1 when absent or null.</summary>
    public int ChoiceCount;
    public int ChoiceIndex;
    public bool HasFinishReason;

    /// <summary>A non-null <c>logprobs</c> that is not a single mergeable token list.</summary>
    public bool HasLogprobs;

    /// <summary>The token list of <c>logprobs</c> (<c>[...]</c>, brackets included), when it is the only one.</summary>
    public JsonStringRange Logprobs;

    /// <summary>Which text field <see cref="Logprobs"/> describes, or <see cref="DeltaKind.None"/>.</summary>
    public DeltaKind LogprobsKind;

    /// <summary>A non-null delta or tool-call field that makes the chunk more than a plain text fragment.</summary>
    public bool HasOtherDeltaFields;
    public bool HasError;
    public bool HasUsage;
    public long? PromptTokens;
    public long? CompletionTokens;
    public JsonStringRange Model;
    public JsonStringRange Content;
    public JsonStringRange Reasoning;
    public JsonStringRange Refusal;
    public JsonStringRange ToolArguments;
    public int ToolCallCount;
    public int ToolIndex;

    /// <summary>The single mergeable text field, or <see cref="DeltaKind.None"/> when the chunk cannot be merged.</summary>
    public readonly DeltaKind MergeableKind(out JsonStringRange range)
    {
        range = default;
        if (ChoiceCount != 1 || HasFinishReason || HasLogprobs || HasOtherDeltaFields || HasError || HasUsage)
        {
            return DeltaKind.None;
        }

        var kind = DeltaKind.None;
        var fields = 0;
        if (Content.IsPresent)
        {
            fields++;
            kind = DeltaKind.Content;
            range = Content;
        }

        if (Reasoning.IsPresent)
        {
            fields++;
            kind = DeltaKind.Reasoning;
            range = Reasoning;
        }

        if (Refusal.IsPresent)
        {
            fields++;
            kind = DeltaKind.Refusal;
            range = Refusal;
        }

        if (ToolCallCount > 0)
        {
            fields++;
            kind = ToolCallCount == 1 && ToolArguments.IsPresent ? DeltaKind.ToolArguments : DeltaKind.None;
            range = ToolArguments;
        }

        // Exactly one non-empty text field (an empty string token carries nothing to merge), and token logprobs,
        // if any, for that same field.
        return fields == 1 && range.IsNonEmpty && (LogprobsKind == DeltaKind.None || LogprobsKind == kind) ? kind : DeltaKind.None;
    }

    /// <summary>Whether the chunk carries generated text (one token of content, reasoning, refusal or arguments).</summary>
    public readonly bool CarriesContent =>
        Content.IsNonEmpty || Reasoning.IsNonEmpty || Refusal.IsNonEmpty || ToolArguments.IsNonEmpty;
}

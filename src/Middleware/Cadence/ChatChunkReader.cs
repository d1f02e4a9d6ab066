using System.Text.Json;

namespace Relay.Middleware.Cadence;

/// <summary>
/// Reads the fields of a <c>chat.completion.chunk</c> that the pipeline acts on, with one forward
/// <see cref="Utf8JsonReader"/> pass and no allocation (no <c>JsonDocument</c> per event). Everything else is
/// skipped and later written back byte for byte, so unknown fields survive.
/// </summary>
internal static class ChatChunkReader
{
    /// <summary>Returns false when <paramref name="json"/> is not a JSON object (the event is passed through as is).</summary>
    public static bool TryRead(ReadOnlySpan<byte> json, out ChatChunkInfo info)
    {
        info = default;
        info.ChoiceCount = -1;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        ReadChoices(ref reader, ref info);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        info.HasUsage = true;
                        ReadUsage(ref reader, ref info);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("x_groq"u8))
                {
                    // Groq reports usage under x_groq.usage (and sometimes at the top level too).
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            if (reader.ValueTextEquals("usage"u8))
                            {
                                reader.Read();
                                if (reader.TokenType == JsonTokenType.StartObject)
                                {
                                    ReadUsage(ref reader, ref info);
                                }
                                else
                                {
                                    reader.Skip();
                                }
                            }
                            else
                            {
                                reader.Skip();
                            }
                        }
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    info.HasError |= reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        info.Model = Range(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    reader.Skip();
                }
            }

            return reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 0;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void ReadChoices(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        info.ChoiceCount = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            info.ChoiceCount++;
            if (info.ChoiceCount == 1 && reader.TokenType == JsonTokenType.StartObject)
            {
                ReadChoice(ref reader, ref info);
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static void ReadChoice(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out info.ChoiceIndex))
                {
                    info.HasOtherDeltaFields = true;
                }
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ReadDelta(ref reader, ref info);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                info.HasFinishReason = reader.TokenType != JsonTokenType.Null;
            }
            else if (reader.ValueTextEquals("logprobs"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ReadLogprobs(ref reader, ref info);
                }
                else
                {
                    info.HasLogprobs = reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
            }
            else
            {
                // Unknown choice fields (Azure content_filter_results, ...) are kept as the first event had them.
                reader.Skip();
            }
        }
    }

    /// <summary>
    /// <c>logprobs</c> is mergeable when it holds exactly one token list (<c>content</c> or <c>refusal</c>) and
    /// nothing else that is not null: the lists of consecutive tokens concatenate.
    /// </summary>
    private static void ReadLogprobs(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var kind = reader.ValueTextEquals("content"u8) ? DeltaKind.Content
                : reader.ValueTextEquals("refusal"u8) ? DeltaKind.Refusal
                : DeltaKind.None;
            reader.Read();
            if (reader.TokenType == JsonTokenType.Null)
            {
                continue;
            }

            if (kind != DeltaKind.None && reader.TokenType == JsonTokenType.StartArray && info.LogprobsKind == DeltaKind.None)
            {
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                info.Logprobs = new JsonStringRange { Start = start, End = (int)reader.BytesConsumed };
                info.LogprobsKind = kind;
            }
            else
            {
                info.HasLogprobs = true;
                reader.Skip();
            }
        }
    }

    private static void ReadDelta(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                ReadText(ref reader, ref info, ref info.Content);
            }
            else if (reader.ValueTextEquals("reasoning_content"u8) || reader.ValueTextEquals("reasoning"u8))
            {
                ReadText(ref reader, ref info, ref info.Reasoning);
            }
            else if (reader.ValueTextEquals("refusal"u8))
            {
                ReadText(ref reader, ref info, ref info.Refusal);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        info.ToolCallCount++;
                        if (info.ToolCallCount == 1 && reader.TokenType == JsonTokenType.StartObject)
                        {
                            ReadToolCall(ref reader, ref info);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    SkipNonNull(ref reader, ref info);
                }
            }
            else
            {
                reader.Read();
                SkipNonNull(ref reader, ref info);
            }
        }
    }

    private static void ReadToolCall(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out info.ToolIndex))
                {
                    info.HasOtherDeltaFields = true;
                }
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    SkipNonNull(ref reader, ref info);
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("arguments"u8))
                    {
                        ReadText(ref reader, ref info, ref info.ToolArguments);
                    }
                    else
                    {
                        // A name starts a call: not a continuation fragment.
                        reader.Read();
                        SkipNonNull(ref reader, ref info);
                    }
                }
            }
            else
            {
                // id and type start a call.
                reader.Read();
                SkipNonNull(ref reader, ref info);
            }
        }
    }

    private static void ReadText(ref Utf8JsonReader reader, ref ChatChunkInfo info, ref JsonStringRange range)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            range = Range(ref reader);
        }
        else
        {
            // Mistral's content arrays and the like: pass the chunk through untouched.
            SkipNonNull(ref reader, ref info);
        }
    }

    private static void SkipNonNull(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        if (reader.TokenType != JsonTokenType.Null)
        {
            info.HasOtherDeltaFields = true;
        }

        reader.Skip();
    }

    private static void ReadUsage(ref Utf8JsonReader reader, ref ChatChunkInfo info)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var prompt))
                {
                    info.PromptTokens = prompt;
                }
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var completion))
                {
                    info.CompletionTokens = completion;
                }
            }
            else
            {
                reader.Skip();
            }
        }
    }

    private static JsonStringRange Range(ref Utf8JsonReader reader) =>
        new() { Start = (int)reader.TokenStartIndex, End = (int)reader.BytesConsumed };
}

using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MockInference;

/// <summary>
/// Writes one stream's SSE events (<c>data: {json}\n\n</c>) shaped like OpenAI's chunks. One instance per
/// stream reuses one <see cref="Utf8JsonWriter"/>, so an event costs no allocation beyond the output buffer.
/// </summary>
internal sealed class ChunkWriter : IDisposable
{
    public const string SystemFingerprint = "fp_mock";

    private static readonly JsonEncodedText s_id = JsonEncodedText.Encode("id");
    private static readonly JsonEncodedText s_object = JsonEncodedText.Encode("object");
    private static readonly JsonEncodedText s_created = JsonEncodedText.Encode("created");
    private static readonly JsonEncodedText s_model = JsonEncodedText.Encode("model");
    private static readonly JsonEncodedText s_fingerprint = JsonEncodedText.Encode("system_fingerprint");
    private static readonly JsonEncodedText s_choices = JsonEncodedText.Encode("choices");
    private static readonly JsonEncodedText s_index = JsonEncodedText.Encode("index");
    private static readonly JsonEncodedText s_delta = JsonEncodedText.Encode("delta");
    private static readonly JsonEncodedText s_role = JsonEncodedText.Encode("role");
    private static readonly JsonEncodedText s_content = JsonEncodedText.Encode("content");
    private static readonly JsonEncodedText s_text = JsonEncodedText.Encode("text");
    private static readonly JsonEncodedText s_logprobs = JsonEncodedText.Encode("logprobs");
    private static readonly JsonEncodedText s_finishReason = JsonEncodedText.Encode("finish_reason");
    private static readonly JsonEncodedText s_usage = JsonEncodedText.Encode("usage");
    private static readonly JsonEncodedText s_emitted = JsonEncodedText.Encode("mock_emitted_us");
    private static readonly JsonEncodedText s_chatChunk = JsonEncodedText.Encode("chat.completion.chunk");
    private static readonly JsonEncodedText s_textCompletion = JsonEncodedText.Encode("text_completion");
    private static readonly JsonEncodedText s_assistant = JsonEncodedText.Encode("assistant");

    internal static readonly JsonWriterOptions WriterOptions = new()
    {
        // Model names and messages go out as raw UTF-8, as the servers we imitate write them.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    private readonly CompletionKind _kind;
    private readonly JsonEncodedText _streamId;
    private readonly long _created;
    private readonly JsonEncodedText _model;
    private readonly bool _includeUsage;
    private readonly int? _topLogprobs;
    private readonly Utf8JsonWriter _json = new(Stream.Null, WriterOptions);

    public ChunkWriter(CompletionKind kind, string streamId, long created, string model, bool includeUsage, int? topLogprobs = null)
    {
        _topLogprobs = kind == CompletionKind.Chat ? topLogprobs : null;
        _kind = kind;
        _streamId = JsonEncodedText.Encode(streamId);
        _created = created;
        _model = JsonEncodedText.Encode(model, JavaScriptEncoder.UnsafeRelaxedJsonEscaping);
        _includeUsage = includeUsage;
    }

    /// <summary>The first chunk of a chat choice: <c>{"role":"assistant","content":""}</c>.</summary>
    public void WriteRole(IBufferWriter<byte> output, int index, long emittedUs)
    {
        var json = Begin(output, index);
        json.WriteStartObject(s_delta);
        json.WriteString(s_role, s_assistant);
        json.WriteString(s_content, ""u8);
        json.WriteEndObject();
        End(output, finishReason: null, emittedUs);
    }

    /// <summary>A content chunk; <paramref name="contentLiteral"/> is a complete JSON string literal.</summary>
    public void WriteContent(IBufferWriter<byte> output, int index, ReadOnlySpan<byte> contentLiteral, long emittedUs)
    {
        var json = Begin(output, index);
        if (_kind == CompletionKind.Chat)
        {
            json.WriteStartObject(s_delta);
            json.WritePropertyName(s_content);
            json.WriteRawValue(contentLiteral, skipInputValidation: true);
            json.WriteEndObject();
            if (_topLogprobs is int top)
            {
                WriteLogprobs(json, contentLiteral, top, emittedUs);
                End(output, finishReason: null, emittedUs, logprobsWritten: true);
                return;
            }
        }
        else
        {
            json.WritePropertyName(s_text);
            json.WriteRawValue(contentLiteral, skipInputValidation: true);
        }

        End(output, finishReason: null, emittedUs);
    }

    /// <summary>The last chunk of a choice: an empty delta and the finish reason.</summary>
    public void WriteFinish(IBufferWriter<byte> output, int index, string finishReason, long emittedUs)
    {
        var json = Begin(output, index);
        if (_kind == CompletionKind.Chat)
        {
            json.WriteStartObject(s_delta);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString(s_text, ""u8);
        }

        End(output, finishReason, emittedUs);
    }

    /// <summary>The usage chunk sent when <c>stream_options.include_usage</c> is set: <c>choices</c> is empty.</summary>
    public void WriteUsage(IBufferWriter<byte> output, int promptTokens, int completionTokens, long emittedUs)
    {
        var json = BeginEnvelope(output);
        json.WriteStartArray(s_choices);
        json.WriteEndArray();
        json.WriteStartObject(s_usage);
        WriteUsageFields(json, promptTokens, completionTokens);
        json.WriteEndObject();
        json.WriteNumber(s_emitted, emittedUs);
        json.WriteEndObject();
        Finish(output);
    }

    public static void WriteDone(IBufferWriter<byte> output) => output.Write("data: [DONE]\n\n"u8);

    /// <summary>An error event after the stream has started (there is no status code left to send).</summary>
    public void WriteError(IBufferWriter<byte> output, string message, string type, string code)
    {
        output.Write("data: "u8);
        _json.Reset(output);
        OpenAiErrors.WriteErrorObject(_json, message, type, code, param: null);
        Finish(output);
    }

    internal static void WriteUsageFields(Utf8JsonWriter json, int promptTokens, int completionTokens)
    {
        json.WriteNumber("prompt_tokens"u8, promptTokens);
        json.WriteNumber("completion_tokens"u8, completionTokens);
        json.WriteNumber("total_tokens"u8, promptTokens + completionTokens);
    }

    public void Dispose() => _json.Dispose();

    private Utf8JsonWriter BeginEnvelope(IBufferWriter<byte> output)
    {
        output.Write("data: "u8);
        _json.Reset(output);
        var json = _json;
        json.WriteStartObject();
        json.WriteString(s_id, _streamId);
        json.WriteString(s_object, _kind == CompletionKind.Chat ? s_chatChunk : s_textCompletion);
        json.WriteNumber(s_created, _created);
        json.WriteString(s_model, _model);
        json.WriteString(s_fingerprint, SystemFingerprint);
        return json;
    }

    private Utf8JsonWriter Begin(IBufferWriter<byte> output, int index)
    {
        var json = BeginEnvelope(output);
        json.WriteStartArray(s_choices);
        json.WriteStartObject();
        json.WriteNumber(s_index, index);
        return json;
    }

    /// <summary>
    /// <c>"logprobs":{"content":[{token, logprob, bytes, top_logprobs}],"refusal":null}</c> for the chunk's text, the
    /// shape OpenAI sends with <c>logprobs: true</c>. The figures are made up (deterministic per chunk); the
    /// alternatives repeat the chunk's own token, which is enough for the shape and the size.
    /// </summary>
    private static void WriteLogprobs(Utf8JsonWriter json, ReadOnlySpan<byte> contentLiteral, int top, long seed)
    {
        Span<byte> bytes = stackalloc byte[256];
        var length = 0;
        try
        {
            var reader = new Utf8JsonReader(contentLiteral);
            reader.Read();
            length = reader.CopyString(bytes);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            // Raw-bytes mode (invalid UTF-8 on purpose) or a long literal: no byte list.
        }

        json.WriteStartObject(s_logprobs);
        json.WriteStartArray(s_content);
        for (var alternative = -1; alternative < top; alternative++)
        {
            if (alternative == 0)
            {
                json.WriteStartArray("top_logprobs"u8);
            }

            json.WriteStartObject();
            json.WritePropertyName("token"u8);
            json.WriteRawValue(contentLiteral, skipInputValidation: true);
            json.WriteNumber("logprob"u8, -((seed + alternative + 1) % 1000) / 97.0);
            json.WriteStartArray("bytes"u8);
            foreach (var b in bytes[..length])
            {
                json.WriteNumberValue(b);
            }

            json.WriteEndArray();
            if (alternative >= 0)
            {
                json.WriteEndObject();
            }
        }

        if (top > 0)
        {
            json.WriteEndArray();
        }
        else
        {
            json.WriteStartArray("top_logprobs"u8);
            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteNull("refusal"u8);
        json.WriteEndObject();
    }

    private void End(IBufferWriter<byte> output, string? finishReason, long emittedUs, bool logprobsWritten = false)
    {
        var json = _json;
        if (!logprobsWritten)
        {
            json.WriteNull(s_logprobs);
        }

        if (finishReason is null)
        {
            json.WriteNull(s_finishReason);
        }
        else
        {
            json.WriteString(s_finishReason, finishReason);
        }

        json.WriteEndObject();
        json.WriteEndArray();
        if (_includeUsage)
        {
            // OpenAI sends "usage": null on every chunk but the last when include_usage is set.
            json.WriteNull(s_usage);
        }

        json.WriteNumber(s_emitted, emittedUs);
        json.WriteEndObject();
        Finish(output);
    }

    private void Finish(IBufferWriter<byte> output)
    {
        _json.Flush();
        output.Write("\n\n"u8);
    }
}

using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Errors;

namespace Relay.Middleware.Requests;

/// <summary>
/// Reads a JSON request body once (bounded), validates it, learns <c>model</c>, <c>stream</c> and
/// <c>stream_options</c>, and rewrites it for the upstream: Relay-only options (<c>chunk_size</c>,
/// <c>flush_interval_ms</c>, <c>partial_json</c>, <c>validate_schema</c>) are removed, since a real OpenAI upstream rejects unknown parameters, and
/// <c>include_usage</c> is added to streaming chat requests because Relay needs usage for its accounting.
/// </summary>
internal static class ChatRequestInspector
{
    internal readonly record struct Failure(int Status, string Message, string? Code, string? Param = null);

    /// <summary>Paths whose bodies are JSON objects Relay reads.</summary>
    public static bool IsJsonEndpoint(PathString path)
        => path.Value is { } p && (p.EndsWith("/chat/completions", StringComparison.OrdinalIgnoreCase)
            || p.EndsWith("/completions", StringComparison.OrdinalIgnoreCase)
            || p.EndsWith("/embeddings", StringComparison.OrdinalIgnoreCase));

    /// <summary>Inspects and rewrites the body; returns a failure to report before anything is forwarded.</summary>
    public static async Task<Failure?> InspectAsync(HttpContext context, RelayRequestFeature feature, long maxBodyBytes)
    {
        var request = context.Request;
        if (!IsJson(request.ContentType))
        {
            return new Failure(StatusCodes.Status415UnsupportedMediaType,
                "The request body must be JSON: send Content-Type: application/json.", "unsupported_media_type");
        }

        if (request.ContentLength > maxBodyBytes)
        {
            return TooLarge(maxBodyBytes);
        }

        var (body, tooLarge) = await ReadBoundedAsync(request.BodyReader, maxBodyBytes, context.RequestAborted);
        if (tooLarge)
        {
            return TooLarge(maxBodyBytes);
        }

        feature.Body = body;
        feature.IsChatCompletion = request.Path.Value!.EndsWith("/chat/completions", StringComparison.OrdinalIgnoreCase);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 128 });
        }
        catch (JsonException ex)
        {
            return new Failure(StatusCodes.Status400BadRequest,
                $"The request body is not valid JSON (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1}).", "invalid_json");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new Failure(StatusCodes.Status400BadRequest, "The request body must be a JSON object.", "invalid_json");
            }

            if (root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String)
            {
                feature.Model = ReadModel(model);
            }

            feature.Stream = root.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.True;
            var hasOptions = root.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object;
            if (root.TryGetProperty("stream_options", out var badOptions) && badOptions.ValueKind is not (JsonValueKind.Object or JsonValueKind.Null))
            {
                return new Failure(StatusCodes.Status400BadRequest, "stream_options must be an object.", "invalid_value", "stream_options");
            }

            var relayOnly = false;
            if (hasOptions)
            {
                if (options.TryGetProperty("include_usage", out var usage))
                {
                    feature.ClientRequestedUsage = usage.ValueKind == JsonValueKind.True;
                }

                // Stream_options.resumable (a Relay extension, effective on routes with Resume:Enabled).
                if (options.TryGetProperty("resumable", out var resumable))
                {
                    relayOnly = true;
                    if (resumable.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                    {
                        return new Failure(StatusCodes.Status400BadRequest,
                            "stream_options.resumable must be true or false.", "invalid_value", "stream_options.resumable");
                    }

                    feature.Resumable = resumable.ValueKind == JsonValueKind.True;
                }

                if (options.TryGetProperty("chunk_size", out var chunk))
                {
                    relayOnly = true;
                    if (chunk.ValueKind != JsonValueKind.Number || !chunk.TryGetInt32(out var size) || size < 1 || size > 4096)
                    {
                        return new Failure(StatusCodes.Status400BadRequest,
                            "stream_options.chunk_size must be an integer from 1 to 4096.", "invalid_value", "stream_options.chunk_size");
                    }

                    feature.ChunkSize = size;
                }

                if (options.TryGetProperty("flush_interval_ms", out var interval))
                {
                    relayOnly = true;
                    if (interval.ValueKind != JsonValueKind.Number || !interval.TryGetInt32(out var ms) || ms < 0 || ms > 10_000)
                    {
                        return new Failure(StatusCodes.Status400BadRequest,
                            "stream_options.flush_interval_ms must be an integer from 0 to 10000.", "invalid_value", "stream_options.flush_interval_ms");
                    }

                    feature.FlushIntervalMs = ms;
                }
            }

            // Structured output: stream_options.partial_json and validate_schema (Relay's), and response_format's schema.
            if (feature.IsChatCompletion)
            {
                feature.StructuredOutput = StructuredOutput.StructuredOutputRequest.TryRead(
                    root, hasOptions ? options : null, feature.Stream, feature.Route.StructuredOutput.Validate, out var structuredFailure, out var structuredOptions);
                if (structuredFailure is not null)
                {
                    return structuredFailure;
                }

                relayOnly |= structuredOptions;
            }

            var addUsage = feature.IsChatCompletion && feature.Stream && !feature.ClientRequestedUsage;
            feature.RelayRequestedUsage = addUsage;
            if (relayOnly || addUsage)
            {
                var rewritten = Rewrite(body, addUsage);
                Replace(request, rewritten);
            }
            else
            {
                Replace(request, body);
            }
        }

        return null;
    }

    private static Failure TooLarge(long max)
        => new(StatusCodes.Status413PayloadTooLarge, $"The request body is larger than the limit of {max} bytes.", "request_too_large");

    private static bool IsJson(string? contentType)
        => contentType is not null && MediaTypeHeaderValue.TryParse(contentType, out var media)
            && (media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || media.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase));

    private static async Task<(byte[] Body, bool TooLarge)> ReadBoundedAsync(PipeReader reader, long max, CancellationToken ct)
    {
        while (true)
        {
            var result = await reader.ReadAsync(ct);
            var buffer = result.Buffer;
            if (buffer.Length > max)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                return ([], true);
            }

            if (result.IsCompleted)
            {
                var copy = buffer.ToArray();
                reader.AdvanceTo(buffer.End);
                return (copy, false);
            }

            // Examine everything, consume nothing: the next read returns the whole body so far.
            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>
    /// The model, for accounting and logs. Relay does not rewrite it, so a name that is not valid text (invalid UTF-8,
    /// an unpaired surrogate escape) goes upstream as sent, to be judged there; Relay records it as best it can.
    /// </summary>
    private static string ReadModel(JsonElement model)
    {
        try
        {
            return model.GetString()!;
        }
        catch (InvalidOperationException)
        {
            var raw = JsonMarshal.GetRawUtf8Value(model);
            return Encoding.UTF8.GetString(raw[1..^1]);
        }
    }

    /// <summary>
    /// Rewrites <c>stream_options</c> and nothing else: every other byte goes upstream as the client sent it. Parsing
    /// the body and writing it again would change what Relay has no business changing, and cannot even write all of
    /// what it can read: <c>"abc \ud83d"</c> (what <c>JSON.stringify</c> makes of half an emoji) has no UTF-8 form.
    /// </summary>
    private static byte[] Rewrite(ReadOnlySpan<byte> body, bool addUsage)
    {
        var output = new ArrayBufferWriter<byte>(body.Length + 48);
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 128 });
        reader.Read();
        var copied = 0;
        var members = 0;
        var wroteOptions = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            members++;
            var isOptions = reader.ValueTextEquals("stream_options"u8);
            reader.Read();
            if (!isOptions)
            {
                reader.Skip();
                continue;
            }

            wroteOptions = true;
            output.Write(body[copied..(int)reader.TokenStartIndex]);
            if (reader.TokenType == JsonTokenType.StartObject)
            {
                WriteOptions(output, body, ref reader, addUsage);
            }
            else
            {
                reader.Skip();
                output.Write(addUsage ? "{\"include_usage\":true}"u8 : body[(int)reader.TokenStartIndex..(int)reader.BytesConsumed]);
            }

            copied = (int)reader.BytesConsumed;
        }

        // The reader stands on the object's closing brace.
        var end = (int)reader.TokenStartIndex;
        output.Write(body[copied..end]);
        if (!wroteOptions && addUsage)
        {
            output.Write(members > 0 ? ",\"stream_options\":{\"include_usage\":true}"u8 : "\"stream_options\":{\"include_usage\":true}"u8);
        }

        output.Write(body[end..]);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Writes the <c>stream_options</c> object the reader stands on without Relay's own options, each kept member as sent.</summary>
    private static void WriteOptions(ArrayBufferWriter<byte> output, ReadOnlySpan<byte> body, ref Utf8JsonReader reader, bool addUsage)
    {
        output.Write("{"u8);
        var first = true;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var start = (int)reader.TokenStartIndex;
            var drop = reader.ValueTextEquals("chunk_size"u8) || reader.ValueTextEquals("flush_interval_ms"u8) || reader.ValueTextEquals("resumable"u8)
                || reader.ValueTextEquals("partial_json"u8) || reader.ValueTextEquals("validate_schema"u8)
                || (addUsage && reader.ValueTextEquals("include_usage"u8));
            reader.Read();
            reader.Skip();
            if (drop)
            {
                continue;
            }

            output.Write(first ? [] : ","u8);
            output.Write(body[start..(int)reader.BytesConsumed]);
            first = false;
        }

        if (addUsage)
        {
            output.Write(first ? "\"include_usage\":true"u8 : ",\"include_usage\":true"u8);
        }

        output.Write("}"u8);
    }

    private static void Replace(HttpRequest request, byte[] body)
    {
        request.Body = new MemoryStream(body, writable: false);
        request.ContentLength = body.Length;
        request.Headers.Remove(HeaderNames.TransferEncoding);
    }
}

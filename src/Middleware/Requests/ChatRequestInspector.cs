using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Errors;

namespace Relay.Middleware.Requests;

/// <summary>
/// Reads a JSON request body once (bounded), validates it, learns <c>model</c>, <c>stream</c> and
/// <c>stream_options</c>, and rewrites it for the upstream: Relay-only options (<c>chunk_size</c>,
/// <c>flush_interval_ms</c>) are removed, since a real OpenAI upstream rejects unknown parameters, and
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
                feature.Model = model.GetString();
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

            var addUsage = feature.IsChatCompletion && feature.Stream && !feature.ClientRequestedUsage;
            feature.RelayRequestedUsage = addUsage;
            if (relayOnly || addUsage)
            {
                var rewritten = Rewrite(root, addUsage);
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

    private static byte[] Rewrite(JsonElement root, bool addUsage)
    {
        var output = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            var wroteOptions = false;
            foreach (var property in root.EnumerateObject())
            {
                if (!property.NameEquals("stream_options"))
                {
                    property.WriteTo(writer);
                    continue;
                }

                wroteOptions = true;
                if (property.Value.ValueKind != JsonValueKind.Object)
                {
                    if (addUsage)
                    {
                        WriteUsageOnlyOptions(writer);
                    }

                    continue;
                }

                writer.WritePropertyName(property.Name);
                writer.WriteStartObject();
                foreach (var option in property.Value.EnumerateObject())
                {
                    if (option.NameEquals("chunk_size") || option.NameEquals("flush_interval_ms"))
                    {
                        continue;
                    }

                    if (option.NameEquals("include_usage") && addUsage)
                    {
                        continue;
                    }

                    option.WriteTo(writer);
                }

                if (addUsage)
                {
                    writer.WriteBoolean("include_usage", true);
                }

                writer.WriteEndObject();
            }

            if (!wroteOptions && addUsage)
            {
                WriteUsageOnlyOptions(writer);
            }

            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    private static void WriteUsageOnlyOptions(Utf8JsonWriter writer)
    {
        writer.WritePropertyName("stream_options");
        writer.WriteStartObject();
        writer.WriteBoolean("include_usage", true);
        writer.WriteEndObject();
    }

    private static void Replace(HttpRequest request, byte[] body)
    {
        request.Body = new MemoryStream(body, writable: false);
        request.ContentLength = body.Length;
        request.Headers.Remove(HeaderNames.TransferEncoding);
    }
}

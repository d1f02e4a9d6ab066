using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>
/// <c>POST /v1/embeddings</c>: small deterministic vectors (a hash of the input seeds them), enough to show
/// that any <c>/v1</c> path passes through a relay untouched.
/// </summary>
internal sealed class EmbeddingsEndpoint(MockTokenizer tokenizer, MockRequestRecorder recorder)
{
    private const int DefaultDimensions = 16;
    private const int MaxDimensions = 4096;

    public async Task HandleAsync(HttpContext context)
    {
        var record = recorder.Start(context);
        if (!MockKnobs.TryParse(context.Request.Headers, out var knobs, out var badHeader))
        {
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status400BadRequest,
                $"Invalid value for header '{badHeader}'.", OpenAiErrors.InvalidRequest, "invalid_mock_header", badHeader);
            return;
        }

        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        var body = buffer.ToArray();
        lock (record.Gate)
        {
            record.RequestBody = Encoding.UTF8.GetString(body);
        }

        if (knobs.Status is int status)
        {
            var (message, type, code) = OpenAiErrors.ForStatus(status);
            await OpenAiErrors.WriteAsync(context, record, status, message, type, code, null);
            return;
        }

        List<string> inputs = [];
        string model = CompletionRequest.DefaultModel;
        var dimensions = DefaultDimensions;
        var base64 = false;
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String)
            {
                model = m.GetString()!;
            }

            if (root.TryGetProperty("dimensions", out var d) && d.ValueKind == JsonValueKind.Number)
            {
                dimensions = Math.Clamp(d.GetInt32(), 1, MaxDimensions);
            }

            base64 = root.TryGetProperty("encoding_format", out var f) && f.ValueEquals("base64"u8);
            if (root.TryGetProperty("input", out var input))
            {
                if (input.ValueKind == JsonValueKind.String)
                {
                    inputs.Add(input.GetString()!);
                }
                else if (input.ValueKind == JsonValueKind.Array)
                {
                    foreach (var item in input.EnumerateArray())
                    {
                        // Token arrays are embedded by their JSON text: deterministic is all that matters here.
                        inputs.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : item.GetRawText());
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            inputs.Clear();
        }

        if (inputs.Count == 0)
        {
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status400BadRequest,
                "'input' is required and must be a string or an array.", OpenAiErrors.InvalidRequest, "invalid_value", "input");
            return;
        }

        var promptTokens = 0;
        var response = context.Response;
        response.ContentType = "application/json";
        lock (record.Gate)
        {
            record.HttpStatus = StatusCodes.Status200OK;
        }

        using (var json = new Utf8JsonWriter(response.BodyWriter, ChunkWriter.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("object"u8, "list"u8);
            json.WriteStartArray("data"u8);
            var vector = new float[dimensions];
            for (var i = 0; i < inputs.Count; i++)
            {
                promptTokens += tokenizer.CountTokens(inputs[i]);
                Embed(inputs[i], vector);
                json.WriteStartObject();
                json.WriteString("object"u8, "embedding"u8);
                json.WriteNumber("index"u8, i);
                if (base64)
                {
                    var bytes = new byte[dimensions * sizeof(float)];
                    for (var k = 0; k < dimensions; k++)
                    {
                        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(k * sizeof(float)), vector[k]);
                    }

                    json.WriteBase64String("embedding"u8, bytes);
                }
                else
                {
                    json.WriteStartArray("embedding"u8);
                    foreach (var value in vector)
                    {
                        json.WriteNumberValue(value);
                    }

                    json.WriteEndArray();
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteString("model"u8, model);
            json.WriteStartObject("usage"u8);
            json.WriteNumber("prompt_tokens"u8, promptTokens);
            json.WriteNumber("total_tokens"u8, promptTokens);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
        var now = MonotonicClock.NowMicroseconds();
        lock (record.Gate)
        {
            record.FirstByteUs = now;
            record.CompletedUs = now;
            record.Status = MockRequestStatus.Completed;
        }
    }

    /// <summary>A unit vector seeded by a stable (FNV-1a) hash of the input; string.GetHashCode is randomized per process.</summary>
    internal static void Embed(string input, Span<float> vector)
    {
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(input))
        {
            hash = (hash ^ b) * 16777619u;
        }

        var random = new Random(unchecked((int)hash));
        var norm = 0.0;
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] = (float)((random.NextDouble() * 2) - 1);
            norm += vector[i] * vector[i];
        }

        var scale = (float)(1 / Math.Sqrt(norm));
        for (var i = 0; i < vector.Length; i++)
        {
            vector[i] *= scale;
        }
    }
}

using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>
/// <c>/v1/models</c> and the mock's own <c>/mock/*</c> routes. The <c>/mock/*</c> routes get an id header
/// but no record, so polling a record does not fill the store.
/// </summary>
internal static class IntrospectionEndpoints
{
    public static readonly string[] Models = ["mock", "mock-json"];

    // A fixed creation time: model lists of real servers do not change between calls.
    private const long ModelsCreated = 1_700_000_000;

    public static async Task ListModelsAsync(HttpContext context)
    {
        var recorder = context.RequestServices.GetRequiredService<MockRequestRecorder>();
        var record = recorder.Start(context);
        var response = context.Response;
        response.ContentType = "application/json";
        using (var json = new Utf8JsonWriter(response.BodyWriter, ChunkWriter.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("object"u8, "list"u8);
            json.WriteStartArray("data"u8);
            foreach (var model in Models)
            {
                json.WriteStartObject();
                json.WriteString("id"u8, model);
                json.WriteString("object"u8, "model"u8);
                json.WriteNumber("created"u8, ModelsCreated);
                json.WriteString("owned_by"u8, "mock-inference"u8);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
        var now = MonotonicClock.NowMicroseconds();
        lock (record.Gate)
        {
            record.HttpStatus = StatusCodes.Status200OK;
            record.FirstByteUs = now;
            record.CompletedUs = now;
            record.Status = MockRequestStatus.Completed;
        }
    }

    public static Task GetClockAsync(HttpContext context)
    {
        var now = MonotonicClock.NowMicroseconds();
        var recorder = context.RequestServices.GetRequiredService<MockRequestRecorder>();
        context.Response.Headers[MockRequestRecorder.RequestIdHeader] = recorder.NextId();
        context.Response.ContentType = "application/json";
        using (var json = new Utf8JsonWriter(context.Response.BodyWriter))
        {
            json.WriteStartObject();
            json.WriteNumber("now_us"u8, now);
            json.WriteEndObject();
        }

        return context.Response.BodyWriter.FlushAsync(context.RequestAborted).AsTask();
    }

    public static async Task GetRecordAsync(HttpContext context)
    {
        var recorder = context.RequestServices.GetRequiredService<MockRequestRecorder>();
        context.Response.Headers[MockRequestRecorder.RequestIdHeader] = recorder.NextId();
        var id = context.Request.RouteValues["id"] as string;
        if (id is null || !recorder.TryGet(id, out var record))
        {
            await OpenAiErrors.WriteAsync(context, null, StatusCodes.Status404NotFound,
                $"No request with id '{id}' is recorded.", OpenAiErrors.InvalidRequest, "not_found", "id");
            return;
        }

        byte[] payload;
        lock (record.Gate)
        {
            // Serialized under the lock: the streaming loop appends to token_emit_us meanwhile.
            payload = JsonSerializer.SerializeToUtf8Bytes(record, MockJsonContext.Default.MockRequestRecord);
        }

        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(payload, context.RequestAborted);
    }
}

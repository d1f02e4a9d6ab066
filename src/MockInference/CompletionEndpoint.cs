using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace MockInference;

/// <summary>
/// <c>POST /v1/chat/completions</c> and <c>POST /v1/completions</c>: real tokens, paced, with the faults
/// real servers have, all driven by <see cref="MockKnobs"/>.
/// </summary>
internal sealed class CompletionEndpoint(
    MockTokenizer tokenizer,
    ReplyFactory replyFactory,
    MockRequestRecorder recorder,
    TimeProvider timeProvider,
    ILogger<CompletionEndpoint> logger)
{
    private const int MaxBodyBytes = 16 * 1024 * 1024;
    private static readonly TimeSpan ResetGracePeriod = TimeSpan.FromMilliseconds(50);

    public async Task HandleAsync(HttpContext context, CompletionKind kind)
    {
        var startTimestamp = timeProvider.GetTimestamp();
        var record = recorder.Start(context);
        var aborted = context.RequestAborted;

        // The abort time is taken inside the callback, the earliest point the server knows the client left.
        using var registration = aborted.UnsafeRegister(static state => RecordAbort((MockRequestRecord)state!), record);
        try
        {
            await HandleCoreAsync(context, kind, record, startTimestamp);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client went away (the handler's only cancellation is RequestAborted; a flush to a connection that
            // is gone reports completion, which FlushAsync turns into OperationCanceledException, before Kestrel fires
            // RequestAborted), but RecordAbort may never run: the write can fail first, or a cancellation
            // continuation that runs inline (callbacks run newest first) can end the handler and unregister it.
            // This is the earliest point known then.
            RecordAbort(record);

            int tokens;
            lock (record.Gate)
            {
                if (record.Status == MockRequestStatus.InProgress)
                {
                    record.Status = MockRequestStatus.Aborted;
                }

                tokens = record.TokensGenerated;
            }

            MockInferenceLog.ClientAborted(logger, record.Id, tokens);
        }
    }

    private static void RecordAbort(MockRequestRecord record)
    {
        var now = MonotonicClock.NowMicroseconds();
        lock (record.Gate)
        {
            record.AbortedUs ??= now;
            record.TokensAtAbort ??= record.TokensGenerated;
        }
    }

    private async Task HandleCoreAsync(HttpContext context, CompletionKind kind, MockRequestRecord record, long startTimestamp)
    {
        var aborted = context.RequestAborted;
        if (!MockKnobs.TryParse(context.Request.Headers, out var knobs, out var badHeader))
        {
            MockInferenceLog.BadRequest(logger, record.Id, badHeader!);
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status400BadRequest,
                $"Invalid value for header '{badHeader}'.", OpenAiErrors.InvalidRequest, "invalid_mock_header", badHeader);
            return;
        }

        var body = await ReadBodyAsync(context.Request, aborted);
        if (body is null)
        {
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status413PayloadTooLarge,
                "The request body is too large.", OpenAiErrors.InvalidRequest, null, null);
            return;
        }

        var bodyText = Encoding.UTF8.GetString(body.Value.Span);
        lock (record.Gate)
        {
            record.RequestBody = bodyText;
        }

        if (MockFailTimes.Apply(context, knobs.Status) is int status)
        {
            MockInferenceLog.InjectedStatus(logger, record.Id, status);
            var (message, type, code) = OpenAiErrors.ForStatus(status);
            await OpenAiErrors.WriteAsync(context, record, status, message, type, code, null);
            return;
        }

        var request = CompletionRequest.Parse(body.Value, kind, tokenizer, out var error, out var param);
        if (request is null)
        {
            MockInferenceLog.BadRequest(logger, record.Id, error!);
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status400BadRequest,
                error!, OpenAiErrors.InvalidRequest, param is null ? null : "invalid_value", param);
            return;
        }

        var structured = StructuredReply.TryCreate(context.Request.Headers, knobs, body.Value, replyFactory, out badHeader);
        if (badHeader is not null)
        {
            MockInferenceLog.BadRequest(logger, record.Id, badHeader);
            await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status400BadRequest,
                $"Invalid value for header '{badHeader}'.", OpenAiErrors.InvalidRequest, "invalid_mock_header", badHeader);
            return;
        }

        var limit = knobs.MaxTokens ?? request.MaxTokens;
        var choices = new TokenizedReply[request.N];
        for (var c = 0; c < choices.Length; c++)
        {
            // Each choice gets its own seed so n > 1 gives different replies, as sampling would.
            choices[c] = structured?.Build(unchecked(knobs.Seed + c), limit)
                ?? replyFactory.Build(knobs.Reply, unchecked(knobs.Seed + c), limit, request.EchoText);
        }

        var schedule = new TokenSchedule(timeProvider, startTimestamp, knobs);
        var streamId = (kind == CompletionKind.Chat ? "chatcmpl-" : "cmpl-") + record.Id;
        var created = timeProvider.GetUtcNow().ToUnixTimeSeconds();
        if (request.Stream)
        {
            await StreamAsync(context, record, kind, request, knobs, choices, schedule, streamId, created);
        }
        else
        {
            await RespondAsync(context, record, kind, request, knobs, choices, schedule, streamId, created);
        }
    }

    private static async Task<ReadOnlyMemory<byte>?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > MaxBodyBytes)
                {
                    return null;
                }

                buffer.Write(chunk, 0, read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return buffer.ToArray();
    }

    private async Task StreamAsync(
        HttpContext context,
        MockRequestRecord record,
        CompletionKind kind,
        CompletionRequest request,
        MockKnobs knobs,
        TokenizedReply[] choices,
        TokenSchedule schedule,
        string streamId,
        long created)
    {
        var aborted = context.RequestAborted;
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        lock (record.Gate)
        {
            record.HttpStatus = StatusCodes.Status200OK;
        }

        // Nothing is written (so no headers go out) until the first event, after the time to first token.
        var output = response.BodyWriter;
        using var chunks = new ChunkWriter(kind, streamId, created, request.Model, request.IncludeUsage, request.TopLogprobs);
        var literal = new ArrayBufferWriter<byte>(256);
        var segmenters = new ContentSegmenter[choices.Length];
        var unsent = new int[choices.Length];
        var longest = 0;
        for (var c = 0; c < choices.Length; c++)
        {
            segmenters[c] = new ContentSegmenter(knobs.TokenBoundary);
            longest = Math.Max(longest, choices[c].TokenCount);
        }

        var generated = 0;
        var stalled = false;
        await schedule.WaitForTokenAsync(0, aborted);
        if (kind == CompletionKind.Chat)
        {
            var now = MonotonicClock.NowMicroseconds();
            for (var c = 0; c < choices.Length; c++)
            {
                chunks.WriteRole(output, c, now);
            }

            await FlushAsync(output, record, aborted);
        }

        for (var step = 0; step < longest; step++)
        {
            await schedule.WaitForTokenAsync(step, aborted);

            // OpenAI interleaves choices: token i of every choice before token i + 1 of any.
            for (var c = 0; c < choices.Length; c++)
            {
                var reply = choices[c];
                if (step >= reply.TokenCount)
                {
                    continue;
                }

                if (knobs.FailAfterTokens is int failAfter && generated >= failAfter)
                {
                    await FailAsync(context, record, knobs, chunks, generated);
                    return;
                }

                if (!stalled && knobs.StallAfterTokens is int stallAfter && generated >= stallAfter)
                {
                    stalled = true;
                    schedule.AddStall(step, knobs.Stall);
                    await schedule.WaitForTokenAsync(step, aborted);
                }

                // Stop generating the moment the client is gone, even when unpaced (no awaits to observe it). Checked
                // again under the record's lock, where RecordAbort notes the abort: a token is either counted before
                // the abort (and is in tokens_at_abort) or not generated at all.
                aborted.ThrowIfCancellationRequested();
                lock (record.Gate)
                {
                    if (record.AbortedUs is not null)
                    {
                        throw new OperationCanceledException(aborted);
                    }

                    record.TokensGenerated = ++generated;
                }

                unsent[c]++;

                literal.ResetWrittenCount();
                if (segmenters[c].Append(reply.Pieces[step].Span, literal))
                {
                    WriteContent(output, chunks, record, c, literal, unsent);
                }

                if (step == reply.TokenCount - 1)
                {
                    literal.ResetWrittenCount();
                    if (segmenters[c].Flush(literal))
                    {
                        WriteContent(output, chunks, record, c, literal, unsent);
                    }

                    var finishedUs = MonotonicClock.NowMicroseconds();
                    chunks.WriteFinish(output, c, reply.FinishReason, finishedUs);

                    // The tokens of a character cut by the token limit are never sent; they end with the finish chunk.
                    RecordEmitted(record, c, unsent, finishedUs);
                }

                await FlushAsync(output, record, aborted);
            }
        }

        if (knobs.FailAfterTokens is int failAtEnd && generated >= failAtEnd)
        {
            await FailAsync(context, record, knobs, chunks, generated);
            return;
        }

        if (request.IncludeUsage)
        {
            chunks.WriteUsage(output, request.PromptTokens, generated, MonotonicClock.NowMicroseconds());
        }

        ChunkWriter.WriteDone(output);
        await FlushAsync(output, record, aborted);
        Complete(record, MockRequestStatus.Completed);
    }

    private static void WriteContent(
        PipeWriter output, ChunkWriter chunks, MockRequestRecord record, int choice, ArrayBufferWriter<byte> literal, int[] unsent)
    {
        var now = MonotonicClock.NowMicroseconds();
        chunks.WriteContent(output, choice, literal.WrittenSpan, now);

        // Held tokens leave with the event that completes their character, so they share its time.
        RecordEmitted(record, choice, unsent, now);
    }

    private static void RecordEmitted(MockRequestRecord record, int choice, int[] unsent, long emittedUs)
    {
        lock (record.Gate)
        {
            for (var i = 0; i < unsent[choice]; i++)
            {
                record.TokenEmitUs.Add(emittedUs);
            }
        }

        unsent[choice] = 0;
    }

    private static async ValueTask FlushAsync(PipeWriter output, MockRequestRecord record, CancellationToken cancellationToken)
    {
        var result = await output.FlushAsync(cancellationToken);
        if (record.FirstByteUs is null)
        {
            var now = MonotonicClock.NowMicroseconds();
            lock (record.Gate)
            {
                record.FirstByteUs ??= now;
            }
        }

        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("The client stopped reading.");
        }
    }

    private async Task FailAsync(HttpContext context, MockRequestRecord record, MockKnobs knobs, ChunkWriter chunks, int generated)
    {
        MockInferenceLog.InjectedFailure(logger, record.Id, knobs.FailMode, generated);
        var output = context.Response.BodyWriter;
        if (knobs.FailMode == FailMode.ErrorEvent)
        {
            chunks.WriteError(output, $"The upstream failed after {generated} tokens (simulated by x-mock-fail-after-tokens).",
                OpenAiErrors.ServerError, "mock_failure");
            await FlushAsync(output, record, context.RequestAborted);
            Complete(record, MockRequestStatus.Failed);
            return;
        }

        // Half an event, then a torn connection: the reader sees a truncated event and an abrupt end.
        var scratch = new ArrayBufferWriter<byte>(512);
        chunks.WriteContent(scratch, 0, "\"this event is cut in half\""u8, MonotonicClock.NowMicroseconds());
        output.Write(scratch.WrittenSpan[..(scratch.WrittenCount / 2)]);
        await FlushAsync(output, record, context.RequestAborted);

        // A flush hands bytes to Kestrel's transport, not to the socket, and Abort drops what is still queued;
        // a short pause lets the half event reach the wire so the reader really sees a truncated event.
        await Task.Delay(ResetGracePeriod, timeProvider, context.RequestAborted);
        Complete(record, MockRequestStatus.Reset);
        context.Abort();
    }

    private async Task RespondAsync(
        HttpContext context,
        MockRequestRecord record,
        CompletionKind kind,
        CompletionRequest request,
        MockKnobs knobs,
        TokenizedReply[] choices,
        TokenSchedule schedule,
        string responseId,
        long created)
    {
        var aborted = context.RequestAborted;
        var total = 0;
        var longest = 0;
        foreach (var reply in choices)
        {
            total += reply.TokenCount;
            longest = Math.Max(longest, reply.TokenCount);
        }

        if (knobs.StallAfterTokens is int stallAfter && stallAfter < total)
        {
            schedule.AddStall(0, knobs.Stall);
        }

        // Without streaming the whole generation happens before the first byte, as on a real server.
        if (knobs.FailAfterTokens is int failAfter && failAfter <= total)
        {
            await schedule.WaitForTokenAsync(failAfter / choices.Length, aborted);
            lock (record.Gate)
            {
                record.TokensGenerated = failAfter;
            }

            MockInferenceLog.InjectedFailure(logger, record.Id, knobs.FailMode, failAfter);
            if (knobs.FailMode == FailMode.ErrorEvent)
            {
                await OpenAiErrors.WriteAsync(context, record, StatusCodes.Status500InternalServerError,
                    $"The upstream failed after {failAfter} tokens (simulated by x-mock-fail-after-tokens).",
                    OpenAiErrors.ServerError, "mock_failure", null);
                Complete(record, MockRequestStatus.Failed);
            }
            else
            {
                Complete(record, MockRequestStatus.Reset);
                context.Abort();
            }

            return;
        }

        await schedule.WaitForTokenAsync(Math.Max(0, longest - 1), aborted);
        lock (record.Gate)
        {
            record.TokensGenerated = total;
            record.HttpStatus = StatusCodes.Status200OK;
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        using (var json = new Utf8JsonWriter(response.BodyWriter, ChunkWriter.WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("id"u8, responseId);
            json.WriteString("object"u8, kind == CompletionKind.Chat ? "chat.completion"u8 : "text_completion"u8);
            json.WriteNumber("created"u8, created);
            json.WriteString("model"u8, request.Model);
            json.WriteString("system_fingerprint"u8, ChunkWriter.SystemFingerprint);
            json.WriteStartArray("choices"u8);
            for (var c = 0; c < choices.Length; c++)
            {
                json.WriteStartObject();
                json.WriteNumber("index"u8, c);
                if (kind == CompletionKind.Chat)
                {
                    json.WriteStartObject("message"u8);
                    json.WriteString("role"u8, "assistant"u8);
                    json.WriteString("content"u8, choices[c].Text);
                    json.WriteNull("refusal"u8);
                    json.WriteEndObject();
                }
                else
                {
                    json.WriteString("text"u8, choices[c].Text);
                }

                json.WriteNull("logprobs"u8);
                json.WriteString("finish_reason"u8, choices[c].FinishReason);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartObject("usage"u8);
            ChunkWriter.WriteUsageFields(json, request.PromptTokens, total);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        await FlushAsync(response.BodyWriter, record, aborted);
        Complete(record, MockRequestStatus.Completed);
    }

    private static void Complete(MockRequestRecord record, string status)
    {
        var now = MonotonicClock.NowMicroseconds();
        lock (record.Gate)
        {
            record.Status = status;
            record.CompletedUs = now;
        }
    }
}

using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Auth;
using Relay.Middleware.Configuration;
using Relay.Middleware.Errors;
using Relay.Middleware.State;
using StackExchange.Redis;

namespace Relay.Middleware.Resume;

/// <summary>
/// Resumable streams, the reading side, on any instance:
/// <list type="bullet">
/// <item><c>GET /relay/v1/streams/{streamId}</c> with <c>Last-Event-ID</c> replays the events after that id from Redis,
/// then follows the live ones, until the stream's final event: no gap and no duplicate, since every event has its
/// sequence number. A browser's <c>EventSource</c> reconnects to the URL it started with, a ticket URL: a used ticket
/// with a <c>Last-Event-ID</c> of the stream it started resumes that stream.</item>
/// <item><c>POST /relay/v1/streams/{streamId}/cancel</c> stops the generation on the instance that relays it (pub/sub),
/// which ends every reader with a final <c>stream_cancelled</c> error event.</item>
/// </list>
/// Both are authorised by the credential that started the stream (compared as a SHA-256, never stored in clear).
/// </summary>
internal sealed partial class ResumeEndpointsMiddleware(RequestDelegate next, IOptions<RelayOptions> options, IServiceProvider services, TimeProvider time,
    ILogger<ResumeEndpointsMiddleware> logger)
{
    /// <summary>How often a waiting follower renews its reader mark (and looks at the stream's state).</summary>
    private static readonly TimeSpan ReaderMarkInterval = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan ReaderMarkLifetime = TimeSpan.FromSeconds(5);
    private const int ReadBatch = 512;
    private readonly bool _redis = !string.IsNullOrWhiteSpace(options.Value.State.Redis);

    public Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!_redis || !request.Path.StartsWithSegments(Auth.StreamTicketsMiddleware.StreamsPath, StringComparison.OrdinalIgnoreCase, out var rest)
            || rest.Value is not { Length: > 1 } tail)
        {
            return next(context);
        }

        var segment = tail[1..];
        if (HttpMethods.IsPost(request.Method) && segment.EndsWith("/cancel", StringComparison.Ordinal) && ResumeKeys.IsStreamId(segment.AsSpan(0, segment.Length - 7)))
        {
            return CancelAsync(context, segment[..^7]);
        }

        if (!HttpMethods.IsGet(request.Method) || segment.Contains('/'))
        {
            return next(context);
        }

        var hasLastEventId = ResumeKeys.TryParseEventId(request.Headers[ResumeKeys.LastEventIdHeader].ToString(), out var resumed, out var sequence);
        if (ResumeKeys.IsStreamId(segment))
        {
            return FollowAsync(context, segment, hasLastEventId && resumed == segment ? sequence : 0, ticketIdentity: null);
        }

        // A ticket URL with the Last-Event-ID of a resumable stream: EventSource reconnecting; otherwise a redemption.
        var signer = (StreamTicketSigner)services.GetService(typeof(StreamTicketSigner))!;
        return hasLastEventId && signer.TryVerify(segment, out var ticketId, out _, out _)
            ? FollowAsync(context, resumed, sequence, ResumeKeys.TicketIdentity(ticketId))
            : next(context);
    }

    private async Task CancelAsync(HttpContext context, string streamId)
    {
        try
        {
            var (meta, refused) = await AuthorizeAsync(context, streamId, ticketIdentity: null);
            if (refused)
            {
                return;
            }

            var state = meta.TryGetValue("state", out var s) ? (string?)s : null;
            if (state == "running")
            {
                var streams = (ResumableStreams)services.GetService(typeof(ResumableStreams))!;
                var owner = Field(meta, "owner") ?? "";
                if (!(owner == streams.InstanceId && streams.TryCancelLocal(streamId)))
                {
                    var receivers = await Redis.RunAsync(static (db, s) => db.PublishAsync(ResumeKeys.CancelChannel(s.owner), s.streamId), (owner, streamId));
                    Log.CancelSent(logger, streamId, receivers);
                }
            }

            context.Response.StatusCode = state == "running" ? StatusCodes.Status202Accepted : StatusCodes.Status200OK;
            context.Response.ContentType = "application/json";
            var body = new ArrayBufferWriter<byte>(96);
            using (var json = new Utf8JsonWriter(body))
            {
                json.WriteStartObject();
                json.WriteString("id", streamId);
                json.WriteString("status", state == "running" ? "cancelling" : "ended");
                json.WriteEndObject();
            }

            await context.Response.Body.WriteAsync(body.WrittenMemory, context.RequestAborted);
        }
        catch (StateStoreUnavailableException)
        {
            await StateStoreUnavailable.WriteAsync(context);
        }
    }

    private async Task FollowAsync(HttpContext context, string streamId, long after, string? ticketIdentity)
    {
        var aborted = context.RequestAborted;
        var startedAt = time.GetTimestamp();
        try
        {
            var (meta, refused) = await AuthorizeAsync(context, streamId, ticketIdentity);
            if (refused)
            {
                return;
            }

            var owner = Field(meta, "owner") ?? "";
            // Checked between reads; a wait for new events does not go past cap.Remaining.
            var cap = ResponseCapOf(meta, context, startedAt);

            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream";
            response.Headers[HeaderNames.CacheControl] = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            response.Headers[ResumeKeys.HeaderName] = streamId;
            Log.Resumed(logger, streamId, after);
            var output = response.BodyWriter;
            var markedAt = long.MinValue;
            using var follower = Feed.Follow(streamId, after);
            while (!aborted.IsCancellationRequested)
            {
                if (cap?.Reached == true)
                {
                    await EndAtCapAsync(output, streamId, after, aborted);
                    return;
                }

                var entries = await ReadAfterAsync(streamId, after);
                if (entries.Length == 0)
                {
                    // Nothing new: ended (or expired) means every event was delivered, once the events read after the state are.
                    var state = (string?)await Redis.RunAsync(static (db, id) => db.HashGetAsync(ResumeKeys.Meta(id), "state"), streamId);
                    if (state != "running")
                    {
                        entries = await ReadAfterAsync(streamId, after);
                        if (entries.Length == 0)
                        {
                            return;
                        }
                    }
                }

                var ended = false;
                foreach (var entry in entries)
                {
                    if (entry.Values is [{ Name: var field }] && field == ResumeKeys.EndField)
                    {
                        ended = true;
                        break;
                    }

                    after = ResumeKeys.Sequence(entry.Id);
                    ResumableStream.WriteEvent(output, (byte[])entry["d"]!, streamId, after);
                }

                if (entries.Length > 0)
                {
                    var flushed = await output.FlushAsync(aborted);
                    if (ended || flushed.IsCompleted || flushed.IsCanceled)
                    {
                        return;
                    }

                    if (entries.Length == ReadBatch)
                    {
                        continue; // A replay of more than one batch.
                    }
                }

                if (time.GetElapsedTime(markedAt) >= ReaderMarkInterval || markedAt == long.MinValue)
                {
                    // This reader counts for the producer's detached time, wherever it runs; and the producer's instance
                    // must still be alive: one that died without ending the stream would leave this reader waiting.
                    markedAt = time.GetTimestamp();
                    var alive = await Redis.RunAsync(static async (db, s) =>
                    {
                        var mark = db.StringSetAsync(ResumeKeys.Reader(s.streamId), 1, ReaderMarkLifetime);
                        var owner = db.KeyExistsAsync(ResumeKeys.Instance(s.owner));
                        await mark.ConfigureAwait(false);
                        return await owner.ConfigureAwait(false);
                    }, (streamId, owner));
                    if (!alive)
                    {
                        Log.OwnerLost(logger, streamId);
                        WriteOwnerLost(output);
                        await output.FlushAsync(aborted);
                        return;
                    }
                }

                // Woken by the live feed's blocking read when an event arrives (at once when it has seen one already); the
                // timeout renews the reader mark and notices a stream whose producer died (its state expires).
                await follower.WaitAsync(after, cap is null || cap.Remaining > ReaderMarkInterval ? ReaderMarkInterval : cap.Remaining, aborted);
            }
        }
        catch (StateStoreUnavailableException)
        {
            // Before the first byte: a 503 the client retries; after it: the response ends and EventSource reconnects.
            await StateStoreUnavailable.WriteAsync(context);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The reader left.
        }
    }

    /// <summary>
    /// The stream's <see cref="ResumeOptions.MaxResponseSeconds"/>, from its record (this endpoint is outside any route:
    /// the instance that started the stream stored its route's cap there), for this response.
    /// </summary>
    private ResponseCap? ResponseCapOf(Dictionary<RedisValue, RedisValue> meta, HttpContext context, long startedAt)
        => meta.TryGetValue(ResumeKeys.MaxResponseSecondsField, out var value) && value.TryParse(out double seconds) ? ResponseCap.For(seconds, context.Request, time, startedAt) : null;

    /// <summary>The cap is reached, between two events: the response ends with a retry field and the client resumes after <paramref name="after"/>.</summary>
    private async Task EndAtCapAsync(System.IO.Pipelines.PipeWriter output, string streamId, long after, CancellationToken aborted)
    {
        Log.FollowerCapped(logger, streamId, after);
        await ResponseCap.WriteRetryAsync(output, aborted);
    }

    /// <summary>The stream's record, or a 404 / 401 written. The caller's credential (or ticket) must be the one that started the stream.</summary>
    private async Task<(Dictionary<RedisValue, RedisValue> Meta, bool Refused)> AuthorizeAsync(HttpContext context, string streamId, string? ticketIdentity)
    {
        var entries = await Redis.RunAsync(static (db, id) => db.HashGetAllAsync(ResumeKeys.Meta(id)), streamId);
        var meta = entries.ToDictionary();
        if (entries.Length == 0)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status404NotFound,
                "No resumable stream has this id (it never existed, or its retention ended).", RelayErrorTypes.InvalidRequest, "stream_not_found");
            return (meta, true);
        }

        var allowed = ticketIdentity is not null
            ? ticketIdentity == Field(meta, "ticket")
            : ResumeKeys.Identity(PresentedToken(context)) == Field(meta, "identity");
        if (!allowed)
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status401Unauthorized,
                "Only the credential that started a stream can resume or cancel it.", RelayErrorTypes.Authentication, "invalid_api_key");
            return (meta, true);
        }

        return (meta, false);
    }

    /// <summary>The final event of a reader whose stream's instance died: the stream ended as a shutdown would have ended it.</summary>
    private static void WriteOwnerLost(IBufferWriter<byte> output)
    {
        var error = RelayErrorTable.ForFailedEnd(Cancellation.StreamEndReason.RelayShutdown);
        ServerSentEvents.SseWriter.WriteErrorEvent(output, error.Message, error.Type, error.Code);
    }

    private static string? Field(Dictionary<RedisValue, RedisValue> meta, string name) => meta.TryGetValue(name, out var value) ? (string?)value : null;

    private RedisState Redis => (RedisState)services.GetService(typeof(RedisState))!;

    private LiveEventFeed Feed => (LiveEventFeed)services.GetService(typeof(LiveEventFeed))!;

    private Task<StreamEntry[]> ReadAfterAsync(string streamId, long after)
        => Redis.RunAsync(static (db, s) => db.StreamRangeAsync(ResumeKeys.Events(s.streamId), $"({(string)ResumeKeys.EntryId(s.after)!}", "+", ReadBatch), (streamId, after));

    private static string? PresentedToken(HttpContext context)
    {
        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        return context.Features.Get<QueryCredentialFeature>()?.Tokens is [var first, ..] ? first.Value : null;
    }

    private static partial class Log
    {
        [LoggerMessage(1530, LogLevel.Debug, "Resumable stream {StreamId} is read after event {Sequence}.", EventName = "ResumableStreamResumed")]
        public static partial void Resumed(ILogger logger, string streamId, long sequence);

        [LoggerMessage(1533, LogLevel.Warning, "The instance that relayed resumable stream {StreamId} is gone without ending it; its reader here ends with relay_shutdown.", EventName = "ResumableStreamOwnerLost")]
        public static partial void OwnerLost(ILogger logger, string streamId);

        [LoggerMessage(1531, LogLevel.Debug, "A cancel of resumable stream {StreamId} was published to its instance ({Receivers} receivers).", EventName = "ResumableStreamCancelSent")]
        public static partial void CancelSent(ILogger logger, string streamId, long receivers);

        [LoggerMessage(1532, LogLevel.Debug, "A resuming response of stream {StreamId} ended at its cap after event {Sequence}; the client resumes from there.", EventName = "ResumableStreamFollowerCapped")]
        public static partial void FollowerCapped(ILogger logger, string streamId, long sequence);
    }
}

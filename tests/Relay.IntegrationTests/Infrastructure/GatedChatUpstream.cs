using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A chat-stream upstream that sends its first content chunks, then holds the rest of its stream until the test opens
/// its gate (on receipt of the first content by the client) or, for a control case, until the gate opens by itself.
/// "Not buffered" then is causal: the client can only open the gate if the first content reached it while the upstream
/// still held the rest; a buffering hop shows as the first content arriving only after the upstream ended.
/// One stream per instance; a client outside the test process (a browser driver) opens the gate with a POST to
/// <see cref="GateUrl"/>.
/// </summary>
public sealed class GatedChatUpstream : IAsyncDisposable
{
    private const string GatePath = "/gate";

    private readonly TaskCompletionSource<bool> _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<long> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ScriptedUpstream _server = null!;

    private GatedChatUpstream()
    {
    }

    public string Url => _server.Url;

    /// <summary>A POST here opens the gate, as <see cref="Open"/> does.</summary>
    public string GateUrl => _server.Url + GatePath;

    /// <summary>True when the client opened the gate, false when it opened by itself.</summary>
    public Task<bool> OpenedByClient => _opened.Task;

    /// <summary>When the upstream wrote the end of its stream (<see cref="SseRead.NowUs"/>, the client's clock).</summary>
    public Task<long> EndedUs => _ended.Task;

    /// <summary>
    /// Starts the upstream: <paramref name="before"/> content chunks ("token0 ", "token1 ", …), the gate,
    /// <paramref name="after"/> more, then <c>[DONE]</c>. With <paramref name="openByItselfAfter"/> the gate opens
    /// without the client (a control case whose hop holds the first content back); without it only the client opens it
    /// (or <see cref="Deadline.Default"/> fails).
    /// </summary>
    public static Task<GatedChatUpstream> StartAsync(int before, int after, TimeSpan? openByItselfAfter = null, string contentType = "text/event-stream")
        => StartAsync([.. Enumerable.Range(0, before + after).Select(Token)], before, openByItselfAfter, contentType);

    /// <summary>
    /// Starts the upstream with the content pieces <paramref name="contents"/>: the first <paramref name="before"/>,
    /// the gate, the others, a chunk with <c>finish_reason</c>, a usage chunk (one token a piece, as servers send it
    /// for <c>stream_options.include_usage</c>) when <paramref name="usage"/>, and <c>[DONE]</c>.
    /// </summary>
    public static async Task<GatedChatUpstream> StartAsync(
        IReadOnlyList<string> contents, int before, TimeSpan? openByItselfAfter = null, string contentType = "text/event-stream", bool usage = false)
    {
        var upstream = new GatedChatUpstream();
        upstream._server = await ScriptedUpstream.StartAsync(context => context.Request.Path == GatePath
            ? upstream.OpenFromRequestAsync(context)
            : upstream.ServeAsync(context, contents, before, openByItselfAfter, contentType, usage));
        return upstream;
    }

    /// <summary>The client received the first content: the rest may come.</summary>
    public void Open() => _opened.TrySetResult(true);

    /// <summary>The content of the default script's chunk <paramref name="index"/>.</summary>
    public static string Token(int index) => "token" + index.ToString(CultureInfo.InvariantCulture) + " ";

    private static string Chunk(string delta, string finishReason = "null")
        => "data: {\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":"
            + delta + ",\"finish_reason\":" + finishReason + "}]}\n\n";

    /// <summary>One content chunk, as an OpenAI-compatible server sends it.</summary>
    public static string ContentChunk(string content) => Chunk("{\"content\":" + JsonSerializer.Serialize(content) + "}");

    /// <summary>The chunk with <c>finish_reason</c>.</summary>
    public static string StopChunk { get; } = Chunk("{}", "\"stop\"");

    private Task OpenFromRequestAsync(HttpContext context)
    {
        Open();
        context.Response.StatusCode = StatusCodes.Status204NoContent;
        return Task.CompletedTask;
    }

    private async Task ServeAsync(HttpContext context, IReadOnlyList<string> contents, int before, TimeSpan? openByItselfAfter, string contentType, bool usage)
    {
        context.Response.ContentType = contentType;
        for (var i = 0; i < before; i++)
        {
            await context.Response.WriteAsync(ContentChunk(contents[i]), context.RequestAborted);
        }

        if (before > 0)
        {
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        // With nothing before the gate, not even the response head has gone out: the upstream holds its first byte.
        if (openByItselfAfter is { } wait)
        {
            // Only for a control: the hop in between holds the first content, so the client can never open the gate.
            _ = Task.Delay(wait, context.RequestAborted).ContinueWith(_ => _opened.TrySetResult(false), TaskScheduler.Default);
        }

        await _opened.Task.WaitAsync(Deadline.Default, context.RequestAborted);
        for (var i = before; i < contents.Count; i++)
        {
            await context.Response.WriteAsync(ContentChunk(contents[i]), context.RequestAborted);
        }

        var end = StopChunk;
        if (usage)
        {
            end += "data: {\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":"
                + contents.Count.ToString(CultureInfo.InvariantCulture) + ",\"total_tokens\":" + (contents.Count + 5).ToString(CultureInfo.InvariantCulture) + "}}\n\n";
        }

        await context.Response.WriteAsync(end + "data: [DONE]\n\n", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
        _ended.TrySetResult(SseRead.NowUs());
    }

    public ValueTask DisposeAsync()
    {
        _opened.TrySetResult(false);
        return _server.DisposeAsync();
    }
}

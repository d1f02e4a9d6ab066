using Microsoft.AspNetCore.Http;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A chat-stream upstream that sends its first content chunks, then holds the rest of its stream until the test opens
/// its gate (on receipt of the first content by the client) or, for a control case, until the gate opens by itself.
/// "Not buffered" then is causal: the client can only open the gate if the first content reached it while the upstream
/// still held the rest; a buffering hop shows as the first content arriving only after the upstream ended.
/// One request per instance.
/// </summary>
public sealed class GatedChatUpstream : IAsyncDisposable
{
    private readonly TaskCompletionSource<bool> _opened = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<long> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ScriptedUpstream _server = null!;

    private GatedChatUpstream()
    {
    }

    public string Url => _server.Url;

    /// <summary>True when the client opened the gate, false when it opened by itself.</summary>
    public Task<bool> OpenedByClient => _opened.Task;

    /// <summary>When the upstream wrote the end of its stream (<see cref="SseRead.NowUs"/>, the client's clock).</summary>
    public Task<long> EndedUs => _ended.Task;

    /// <summary>
    /// Starts the upstream: <paramref name="before"/> content chunks, the gate, <paramref name="after"/> more, then
    /// <c>[DONE]</c>. With <paramref name="openByItselfAfter"/> the gate opens without the client (a control case whose
    /// hop holds the first content back); without it only the client opens it (or <see cref="Deadline.Default"/> fails).
    /// </summary>
    public static async Task<GatedChatUpstream> StartAsync(int before, int after, TimeSpan? openByItselfAfter = null, string contentType = "text/event-stream")
    {
        var upstream = new GatedChatUpstream();
        upstream._server = await ScriptedUpstream.StartAsync(context => upstream.ServeAsync(context, before, after, openByItselfAfter, contentType));
        return upstream;
    }

    /// <summary>The client received the first content: the rest may come.</summary>
    public void Open() => _opened.TrySetResult(true);

    /// <summary>One content chunk, as an OpenAI-compatible server sends it.</summary>
    public static string Chunk(int index)
        => "data: {\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token"
            + index.ToString(System.Globalization.CultureInfo.InvariantCulture) + " \"},\"finish_reason\":null}]}\n\n";

    private async Task ServeAsync(HttpContext context, int before, int after, TimeSpan? openByItselfAfter, string contentType)
    {
        context.Response.ContentType = contentType;
        for (var i = 0; i < before; i++)
        {
            await context.Response.WriteAsync(Chunk(i), context.RequestAborted);
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
        for (var i = before; i < before + after; i++)
        {
            await context.Response.WriteAsync(Chunk(i), context.RequestAborted);
        }

        await context.Response.WriteAsync("data: {\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", context.RequestAborted);
        await context.Response.Body.FlushAsync(context.RequestAborted);
        _ended.TrySetResult(SseRead.NowUs());
    }

    public ValueTask DisposeAsync()
    {
        _opened.TrySetResult(false);
        return _server.DisposeAsync();
    }
}

using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using StackExchange.Redis;

namespace Relay.Middleware.Resume;

/// <summary>
/// Names of a resumable stream: its id (<c>rs_</c> and 128 random bits, base64url), its event ids
/// (<c>{streamId}:{sequence}</c>, from 1), and its Redis keys (one hash tag per stream, so they share a cluster slot).
/// </summary>
internal static class ResumeKeys
{
    public const string HeaderName = "Relay-Stream-Id";
    public const string LastEventIdHeader = "Last-Event-ID";
    private const string IdPrefix = "rs_";

    /// <summary>The field of a stream's end mark, the entry after its last event (an event's field is <c>d</c>).</summary>
    public const string EndField = "end";

    /// <summary>The meta hash field with the stream's <see cref="ResumeOptions.MaxResponseSeconds"/> (0: off).</summary>
    public const string MaxResponseSecondsField = "max_response_seconds";

    public static string NewStreamId() => IdPrefix + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));

    public static bool IsStreamId(ReadOnlySpan<char> value) => value.StartsWith(IdPrefix, StringComparison.Ordinal) && value.Length == IdPrefix.Length + 22
        && Base64Url.IsValid(value[IdPrefix.Length..]);

    /// <summary>Reads <c>Last-Event-ID</c>: the stream it names and the last sequence number the client has.</summary>
    public static bool TryParseEventId(string? value, out string streamId, out long sequence)
    {
        streamId = "";
        sequence = 0;
        var colon = value?.LastIndexOf(':') ?? -1;
        if (colon < 0 || !IsStreamId(value.AsSpan(0, colon))
            || !long.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out sequence))
        {
            return false;
        }

        streamId = value![..colon];
        return true;
    }

    public static RedisKey Events(string streamId) => $"relay:resume:{{{streamId}}}:events";

    public static RedisKey Meta(string streamId) => $"relay:resume:{{{streamId}}}:meta";

    /// <summary>Present (with a short TTL, renewed) while some instance serves a reader of the stream.</summary>
    public static RedisKey Reader(string streamId) => $"relay:resume:{{{streamId}}}:reader";

    /// <summary>Present (with a short TTL, renewed) while the instance is alive: followers of its streams look at it.</summary>
    public static RedisKey Instance(string instanceId) => $"relay:resume:instance:{instanceId}";

    public static RedisChannel CancelChannel(string instanceId) => RedisChannel.Literal($"relay:resume:cancel:{instanceId}");

    /// <summary>The Redis Stream entry id of an event: explicit, so that the SSE id maps to it without a lookup.</summary>
    public static RedisValue EntryId(long sequence) => $"1-{sequence.ToString(CultureInfo.InvariantCulture)}";

    public static long Sequence(RedisValue entryId)
    {
        var text = (string)entryId!;
        return long.Parse(text.AsSpan(text.IndexOf('-') + 1), NumberStyles.None, CultureInfo.InvariantCulture);
    }

    /// <summary>Who may read or cancel a stream: the SHA-256 of the credential that started it, never the credential.</summary>
    public static string Identity(string? token)
        => token is null ? "anonymous" : Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>The ticket a browser's <c>EventSource</c> started the stream with (it reconnects to the same URL).</summary>
    public static string TicketIdentity(string ticketId) => Identity("ticket:" + ticketId);
}

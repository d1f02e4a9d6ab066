using System.Collections.Concurrent;

namespace MockInference;

/// <summary>
/// Builds tokenized replies. Text and JSON replies depend only on (mode, seed, limit), so they are cached:
/// a benchmark sends thousands of identical requests and must not tokenize each one.
/// </summary>
internal sealed class ReplyFactory(MockTokenizer tokenizer)
{
    public const int DefaultTextTokens = 200;
    private const int CacheCapacity = 512;

    private readonly ConcurrentDictionary<(ReplyMode Mode, int Seed, int Limit), TokenizedReply> _cache = new();

    /// <summary>Builds the reply for one choice.</summary>
    /// <param name="limit">The token limit from the request, or null for the mode's natural length.</param>
    /// <param name="echoText">The text echoed in <see cref="ReplyMode.Echo"/>.</param>
    public TokenizedReply Build(ReplyMode mode, int seed, int? limit, string echoText)
    {
        if (mode == ReplyMode.Echo)
        {
            return Tokenize(echoText, limit);
        }

        var key = (mode, seed, limit ?? -1);
        if (_cache.TryGetValue(key, out var cached))
        {
            return cached;
        }

        var text = mode == ReplyMode.Json
            ? ReplyText.GenerateJson(seed)
            : ReplyText.Generate(seed, limit ?? DefaultTextTokens, tokenizer);
        var reply = Tokenize(text, limit);
        if (_cache.Count >= CacheCapacity)
        {
            _cache.Clear();
        }

        _cache[key] = reply;
        return reply;
    }

    internal TokenizedReply Tokenize(string text, int? limit)
    {
        var ids = tokenizer.Encode(text);
        var count = limit is int max && max < ids.Count ? max : ids.Count;
        var pieces = new ReadOnlyMemory<byte>[count];
        for (var i = 0; i < count; i++)
        {
            pieces[i] = tokenizer.GetTokenBytes(ids[i]);
        }

        return new TokenizedReply(pieces, truncated: count < ids.Count);
    }
}

using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>Per-request behaviour, read from <c>x-mock-*</c> request headers (documented in README.md).</summary>
internal sealed record MockKnobs
{
    public const int DefaultSeed = 42;
    public const double DefaultTokensPerSecond = 50;
    public const int DefaultTtftMs = 200;

    // Above this rate pacing is pointless: timer resolution is about a millisecond.
    private const double AsFastAsPossibleRate = 100_000;

    public double TokensPerSecond { get; init; } = DefaultTokensPerSecond;
    public TimeSpan Ttft { get; init; } = TimeSpan.FromMilliseconds(DefaultTtftMs);
    public int? MaxTokens { get; init; }
    public ReplyMode Reply { get; init; } = ReplyMode.Text;
    public int Seed { get; init; } = DefaultSeed;
    public int? FailAfterTokens { get; init; }
    public FailMode FailMode { get; init; } = FailMode.ErrorEvent;
    public int? StallAfterTokens { get; init; }
    public TimeSpan Stall { get; init; }
    public int? Status { get; init; }
    public TokenBoundaryMode TokenBoundary { get; init; } = TokenBoundaryMode.Hold;

    /// <summary>True when tokens are written without pacing.</summary>
    public bool Unpaced => TokensPerSecond <= 0 || TokensPerSecond >= AsFastAsPossibleRate;

    /// <summary>Parses the knobs; on a bad value returns false with the offending header name.</summary>
    public static bool TryParse(IHeaderDictionary headers, out MockKnobs knobs, out string? badHeader)
    {
        knobs = new MockKnobs();
        badHeader = null;
        string? value;

        if ((value = Get(headers, "x-mock-tokens-per-second")) is not null)
        {
            if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var rate) || rate < 0 || double.IsNaN(rate))
            {
                badHeader = "x-mock-tokens-per-second";
                return false;
            }

            knobs = knobs with { TokensPerSecond = rate };
        }

        if (!TryInt(headers, "x-mock-ttft-ms", 0, ref badHeader, out var ttft)
            || !TryInt(headers, "x-mock-max-tokens", 1, ref badHeader, out var maxTokens)
            || !TryInt(headers, "x-mock-seed", int.MinValue, ref badHeader, out var seed)
            || !TryInt(headers, "x-mock-fail-after-tokens", 0, ref badHeader, out var failAfter)
            || !TryInt(headers, "x-mock-stall-after-tokens", 0, ref badHeader, out var stallAfter)
            || !TryInt(headers, "x-mock-stall-ms", 0, ref badHeader, out var stallMs)
            || !TryInt(headers, "x-mock-status", 100, ref badHeader, out var status))
        {
            return false;
        }

        if (status is > 599)
        {
            badHeader = "x-mock-status";
            return false;
        }

        knobs = knobs with
        {
            Ttft = ttft is int t ? TimeSpan.FromMilliseconds(t) : knobs.Ttft,
            MaxTokens = maxTokens,
            Seed = seed ?? DefaultSeed,
            FailAfterTokens = failAfter,
            StallAfterTokens = stallAfter,
            Stall = TimeSpan.FromMilliseconds(stallMs ?? 0),
            Status = status,
        };

        switch (Get(headers, "x-mock-reply"))
        {
            case null or "text": break;
            case "echo": knobs = knobs with { Reply = ReplyMode.Echo }; break;
            case "json": knobs = knobs with { Reply = ReplyMode.Json }; break;
            default: badHeader = "x-mock-reply"; return false;
        }

        switch (Get(headers, "x-mock-fail-mode"))
        {
            case null or "error-event": break;
            case "reset": knobs = knobs with { FailMode = FailMode.Reset }; break;
            default: badHeader = "x-mock-fail-mode"; return false;
        }

        switch (Get(headers, "x-mock-token-boundary"))
        {
            case null or "hold": break;
            case "surrogates": knobs = knobs with { TokenBoundary = TokenBoundaryMode.Surrogates }; break;
            case "raw-bytes": knobs = knobs with { TokenBoundary = TokenBoundaryMode.RawBytes }; break;
            default: badHeader = "x-mock-token-boundary"; return false;
        }

        return true;
    }

    private static string? Get(IHeaderDictionary headers, string name)
    {
        var values = headers[name];
        return values.Count == 0 ? null : values[0]?.Trim().ToLowerInvariant();
    }

    private static bool TryInt(IHeaderDictionary headers, string name, int min, ref string? badHeader, out int? result)
    {
        result = null;
        var value = Get(headers, name);
        if (value is null)
        {
            return true;
        }

        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) || parsed < min)
        {
            badHeader = name;
            return false;
        }

        result = parsed;
        return true;
    }
}

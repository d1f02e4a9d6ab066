using System.Globalization;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Cancellation;

/// <summary>The timeouts of one request: the route's, possibly shortened or set by the <c>Relay-Timeout</c> header.</summary>
/// <param name="FirstToken">Until the first byte reaches the client.</param>
/// <param name="Idle">No upstream bytes mid-stream.</param>
/// <param name="MaxDuration">The hard maximum.</param>
/// <param name="WriteStall">The client accepts no bytes.</param>
internal readonly record struct StreamTimeouts(TimeSpan FirstToken, TimeSpan Idle, TimeSpan MaxDuration, TimeSpan WriteStall)
{
    /// <summary>The request header a client sets to choose its own timeouts.</summary>
    public const string HeaderName = "Relay-Timeout";

    /// <summary>The route's timeouts.</summary>
    public static StreamTimeouts FromOptions(TimeoutOptions o)
        => new(Seconds(o.FirstTokenSeconds), Seconds(o.IdleSeconds), Seconds(o.MaxDurationSeconds), Seconds(o.WriteStallSeconds));

    /// <summary>
    /// Applies a <c>Relay-Timeout</c> header: either a number of seconds (the hard maximum duration), or
    /// comma-separated <c>total=S</c>, <c>first-token=S</c>, <c>idle=S</c>. Each value is capped by the route's
    /// <see cref="TimeoutOptions.MaxRequestTimeoutSeconds"/>.
    /// </summary>
    public static bool TryApplyHeader(StreamTimeouts route, TimeoutOptions options, string header, out StreamTimeouts result, out string? error)
    {
        result = route;
        error = null;
        var cap = options.MaxRequestTimeoutSeconds > 0 ? options.MaxRequestTimeoutSeconds : double.MaxValue;
        foreach (var part in header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            var key = eq < 0 ? "total" : part[..eq].Trim().ToLowerInvariant();
            var text = eq < 0 ? part : part[(eq + 1)..].Trim();
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || seconds <= 0 || double.IsNaN(seconds) || double.IsInfinity(seconds))
            {
                error = $"The {HeaderName} header must be a positive number of seconds, or total=, first-token=, idle= values.";
                return false;
            }

            var value = TimeSpan.FromSeconds(Math.Min(seconds, cap));
            switch (key)
            {
                case "total":
                    result = result with { MaxDuration = value };
                    break;
                case "first-token":
                    result = result with { FirstToken = value };
                    break;
                case "idle":
                    result = result with { Idle = value };
                    break;
                default:
                    error = $"Unknown {HeaderName} key '{key}': use total, first-token or idle.";
                    return false;
            }
        }

        return true;
    }

    private static TimeSpan Seconds(double s) => s <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(s);
}

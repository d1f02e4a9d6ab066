using System.Diagnostics;

namespace MockInference;

/// <summary>
/// Microseconds of the machine's monotonic clock. On Linux <see cref="Stopwatch.GetTimestamp"/> reads
/// CLOCK_MONOTONIC, so values taken in different processes on one machine are comparable: a client can
/// compare its own receive times with the mock's <c>mock_emitted_us</c> and recorded timestamps.
/// </summary>
public static class MonotonicClock
{
    /// <summary>Current monotonic time in microseconds.</summary>
    public static long NowMicroseconds() => ToMicroseconds(Stopwatch.GetTimestamp());

    /// <summary>Converts a <see cref="Stopwatch"/> timestamp to microseconds.</summary>
    public static long ToMicroseconds(long stopwatchTimestamp)
    {
        // Int128 because timestamp * 1e6 overflows long after ~2.5 hours of uptime at a 1 GHz frequency.
        return (long)((Int128)stopwatchTimestamp * 1_000_000 / Stopwatch.Frequency);
    }
}

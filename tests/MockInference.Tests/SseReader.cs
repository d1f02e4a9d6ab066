namespace MockInference.Tests;

/// <summary>Tiny test-only SSE reader: events are split on "\n\n" (the mock writes only "data:" lines).</summary>
public static class SseReader
{
    public static async Task<List<SseEvent>> ReadAllAsync(
        HttpResponseMessage response, int? stopAfterEvents = null, CancellationToken cancellationToken = default)
    {
        var events = new List<SseEvent>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var pending = new List<byte>();
        var buffer = new byte[8192];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            var now = MonotonicClock.NowMicroseconds();
            pending.AddRange(buffer.AsSpan(0, read));
            int end;
            while ((end = IndexOf(pending, "\n\n"u8)) >= 0)
            {
                var block = pending.GetRange(0, end).ToArray();
                pending.RemoveRange(0, end + 2);
                Assert.True(block.AsSpan().StartsWith("data: "u8), "every event is a data line");
                events.Add(new SseEvent(block[6..], now));
                if (events.Count == stopAfterEvents)
                {
                    return events;
                }
            }
        }

        Assert.Empty(pending);
        return events;
    }

    private static int IndexOf(List<byte> bytes, ReadOnlySpan<byte> value)
    {
        for (var i = 0; i + value.Length <= bytes.Count; i++)
        {
            var match = true;
            for (var k = 0; k < value.Length && match; k++)
            {
                match = bytes[i + k] == value[k];
            }

            if (match)
            {
                return i;
            }
        }

        return -1;
    }
}

using System.Globalization;
using Relay.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Relay.IntegrationTests;

/// <summary>
/// End to end: the simulated upstream's text (emoji ZWJ sequences, skin tones, flags, combining
/// marks, Hangul, CJK) through Relay's default cadence, segmented as a whole the way browsers do (UAX #29 extended
/// grapheme clusters: <see cref="StringInfo"/>, like <c>Intl.Segmenter</c>): no cluster is split across events, at
/// the mock's full pace and at 50 tokens/s, in every token-boundary mode (event latency against direct is reported).
/// </summary>
public sealed class GraphemeClusterTests(MockUpstreamFixture upstream, ITestOutputHelper output) : RelayTestBase(upstream)
{
    private static readonly string[] s_modes = ["hold", "surrogates", "raw-bytes"];

    [Fact]
    public async Task FullPace_NoClusterSplitAcrossEvents()
    {
        var streams = Enumerable.Range(1, 40).SelectMany(static seed => s_modes.Select(mode => (seed, mode))).ToList();
        var results = await RunAsync(streams, tokensPerSecond: 0, maxTokens: 200, parallel: 8);
        var splits = results.SelectMany(static r => r.Splits.Select(s => (r.Seed, r.Mode, Split: s))).ToList();

        // The first token goes out at once: a combining mark in the second token cannot join it.
        var unavoidable = splits.Where(static s => s.Split.AfterFirstEvent && s.Split.MarkAfterLetter).ToList();
        output.WriteLine($"{results.Count} streams, {results.Sum(static r => r.Events)} content events; splits after the first event before a mark: {unavoidable.Count}");
        Assert.True(splits.Count == unavoidable.Count, Describe(splits.Except(unavoidable)));
    }

    [Fact]
    public async Task FiftyTokensPerSecond_NoClusterSplitAcrossEvents()
    {
        var streams = Enumerable.Range(1, 16).SelectMany(static seed => s_modes.Select(mode => (seed, mode))).ToList();
        var results = await RunAsync(streams, tokensPerSecond: 50, maxTokens: 80, parallel: streams.Count);
        var splits = results.SelectMany(static r => r.Splits.Select(s => (r.Seed, r.Mode, Split: s, HeldMs: r.Latencies[s.Index].Us / 1000.0))).ToList();

        // A combining mark in a later token than its letter, from an upstream slower than the cadence: nothing in
        // "Cafe" says an accent follows, and holding every final letter would delay all text by a token. And a cluster
        // whose next part did not reach Relay within the hold's bound (500 ms), on a machine that stalled that long
        // (a loaded CI run): released by design, its event's latency shows it.
        var allowed = splits.Where(static s => s.Split.MarkAfterLetter || s.HeldMs >= 450).ToList();
        Assert.True(splits.Count == allowed.Count, Describe(splits.Except(allowed).Select(static s => (s.Seed, s.Mode, s.Split))));

        // The same streams read directly from the upstream, at the same time: the machine's own delay, for comparison.
        // (Whole characters: a client's JSON parser refuses the other modes' half characters, which Relay repairs.)
        var direct = await RunAsync([.. streams.Select(static s => (s.seed, "hold"))], tokensPerSecond: 50, maxTokens: 80, parallel: streams.Count, baseUrl: Upstream.Url);
        var (p50, p90) = Percentiles(results.SelectMany(static r => r.Latencies));
        var (plainP50, plainP90) = Percentiles(results.SelectMany(static r => r.Latencies).Where(static l => !l.Emoji));
        var (emojiP50, emojiP90) = Percentiles(results.SelectMany(static r => r.Latencies).Where(static l => l.Emoji));
        var (directP50, directP90) = Percentiles(direct.SelectMany(static r => r.Latencies));
        output.WriteLine($"{results.Count} streams, {results.Sum(static r => r.Events)} content events; event latency (received - mock_emitted_us) "
            + $"through Relay p50 {p50:F1} ms, p90 {p90:F1} ms (events without emoji p50 {plainP50:F1}, p90 {plainP90:F1}; with emoji p50 {emojiP50:F1}, p90 {emojiP90:F1}); "
            + $"direct p50 {directP50:F1} ms, p90 {directP90:F1} ms; letter|mark splits: {allowed.Count(static s => s.Split.MarkAfterLetter)}, held to the bound: {allowed.Count(static s => !s.Split.MarkAfterLetter)}");

        // Reported, not asserted: on a shared machine both figures follow its load. That plain text is never held
        // and that a token 20 ms after the last flush goes out at once is asserted on a fake clock
        // (Relay.Middleware.Tests: GraphemeClusterTests, CadenceThrottleTests).
    }

    private static (double P50, double P90) Percentiles(IEnumerable<EventLatency> events)
    {
        var latencies = events.Select(static e => e.Us).Order().ToList();
        return latencies.Count == 0 ? (0, 0) : (latencies[latencies.Count / 2] / 1000.0, latencies[latencies.Count * 9 / 10] / 1000.0);
    }

    [Fact]
    public async Task Control_EveryTokenAsItComes_SplitsClusters()
    {
        // chunk_size 1 holds nothing: the same upstream text splits clusters, so the checks above can see a split.
        var results = await RunAsync([(4, "hold")], tokensPerSecond: 0, maxTokens: 200, parallel: 1, streamOptions: new { chunk_size = 1 });
        Assert.Contains(results[0].Splits, static s => !s.MarkAfterLetter);
    }

    private async Task<List<StreamResult>> RunAsync(List<(int Seed, string Mode)> streams, int tokensPerSecond, int maxTokens, int parallel, object? streamOptions = null, string? baseUrl = null)
    {
        var results = new StreamResult[streams.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, streams.Count), new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (i, ct) =>
        {
            var (seed, mode) = streams[i];
            using var request = SseRead.ChatRequest(baseUrl ?? Relay.Url, streamOptions: streamOptions, headers: new Dictionary<string, string>
            {
                ["x-mock-seed"] = seed.ToString(CultureInfo.InvariantCulture),
                ["x-mock-tokens-per-second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture),
                ["x-mock-ttft-ms"] = "0",
                ["x-mock-max-tokens"] = maxTokens.ToString(CultureInfo.InvariantCulture),
                ["x-mock-token-boundary"] = mode,
            });
            using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var events = await SseRead.ReadAllAsync(response, ct);
            Assert.True(events[^1].IsDone || baseUrl is not null, $"seed {seed} {mode}: {events[^1].Data}");
            var content = events.Where(static e => e.Content.Length > 0).ToList();
            results[i] = new StreamResult(seed, mode, content.Count, SplitClusters(content.Select(static e => e.Content).ToList()),
                content.Select(static e => new EventLatency(e.ReceivedUs - e.Json.GetProperty("mock_emitted_us").GetInt64(),
                    e.Content.EnumerateRunes().Any(static r => r.Value >= 0x1F000 || r.Value is >= 0x2600 and <= 0x27BF or 0x200D))).ToList());
        });

        return [.. results];
    }

    /// <summary>Every boundary between events that is not a UAX #29 extended grapheme cluster boundary of the whole text.</summary>
    internal static List<Split> SplitClusters(List<string> pieces)
    {
        var whole = string.Concat(pieces);
        var boundaries = StringInfo.ParseCombiningCharacters(whole).ToHashSet();
        var splits = new List<Split>();
        var at = 0;
        for (var i = 0; i < pieces.Count - 1; i++)
        {
            at += pieces[i].Length;
            if (!boundaries.Contains(at))
            {
                var after = CharUnicodeInfo.GetUnicodeCategory(whole, at);
                var before = CharUnicodeInfo.GetUnicodeCategory(whole, char.IsLowSurrogate(whole[at - 1]) ? at - 2 : at - 1);
                var markAfterLetter = after is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                    && before <= UnicodeCategory.EnclosingMark;
                splits.Add(new Split(whole[Math.Max(0, at - 8)..at] + "|" + whole[at..Math.Min(whole.Length, at + 8)], i == 0, markAfterLetter, i));
            }
        }

        return splits;
    }

    private static string Describe(IEnumerable<(int Seed, string Mode, Split Split)> splits)
        => "split clusters: " + string.Join("; ", splits.Take(20).Select(static s => $"seed {s.Seed} {s.Mode}: \"{s.Split.Context}\""));

    /// <summary>A split between the events at <paramref name="Index"/> and the next.</summary>
    internal sealed record Split(string Context, bool AfterFirstEvent, bool MarkAfterLetter, int Index);

    private sealed record StreamResult(int Seed, string Mode, int Events, List<Split> Splits, List<EventLatency> Latencies);

    /// <summary>One content event's latency, and whether it carries an emoji (the clusters held for their next token).</summary>
    private sealed record EventLatency(long Us, bool Emoji);
}

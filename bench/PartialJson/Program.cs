using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Relay.Middleware.StructuredOutput;

// A ~20 KB structured-output document fed as its o200k token deltas: Relay's PartialJsonParser (each byte read
// once) against npm partial-json re-parsing the whole buffer on every delta, as its callers do. Usage:
//   dotnet run -c Release --project bench/PartialJson [-- runs]   (npm ci in bench/PartialJson/node first)
var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 7;
const int Buckets = 10;
const int FlushEvery = 8;

var document = BuildDocument(targetBytes: 20_000);
var deltas = Tokenize(document);
Console.WriteLine($"document: {Encoding.UTF8.GetByteCount(document):N0} bytes, {deltas.Count:N0} deltas (o200k tokens)");

var relayTotals = new List<(double Ms, double[] BucketUs)>();
var flushTotals = new List<double>();
for (var run = 0; run < runs + 3; run++)
{
    var (ms, buckets) = FeedAndRead(deltas, Buckets);
    var flushMs = FeedAndWriteEveryFlush(deltas, FlushEvery);
    if (run >= 3)
    {
        relayTotals.Add((ms, buckets));
        flushTotals.Add(flushMs);
    }
}

// The median run's total, and per tenth the median over the runs (a GC or a descheduling lands in one run's tenth).
var relay = (Ms: relayTotals.Select(r => r.Ms).Order().ElementAt(runs / 2),
    BucketUs: Enumerable.Range(0, Buckets).Select(b => relayTotals.Select(r => r.BucketUs[b]).Order().ElementAt(runs / 2)).ToArray());
var flush = flushTotals.Order().ElementAt(runs / 2);

var deltasPath = Path.Combine(Path.GetTempPath(), $"partial-json-deltas-{Environment.ProcessId}.json");
File.WriteAllText(deltasPath, JsonSerializer.Serialize(deltas));
var script = Path.Combine(SourceDirectory(), "node", "reparse.mjs");
var node = Process.Start(new ProcessStartInfo("node", [script, deltasPath, runs.ToString(CultureInfo.InvariantCulture)])
{
    RedirectStandardOutput = true,
    WorkingDirectory = Path.GetDirectoryName(script)!,
})!;
var npmJson = await node.StandardOutput.ReadToEndAsync();
await node.WaitForExitAsync();
File.Delete(deltasPath);
using var npm = JsonDocument.Parse(npmJson);
var npmMs = npm.RootElement.GetProperty("totalMs").GetDouble();
var npmBuckets = npm.RootElement.GetProperty("bucketUs").EnumerateArray().Select(e => e.GetDouble()).ToArray();

Console.WriteLine();
Console.WriteLine($"| | total, all {deltas.Count:N0} deltas | per delta, first tenth | per delta, last tenth |");
Console.WriteLine("|---|---|---|---|");
Console.WriteLine($"| Relay PartialJsonParser: TryAppend + TryGetValue per delta | {relay.Ms:F2} ms | {relay.BucketUs[0]:F2} µs | {relay.BucketUs[^1]:F2} µs |");
Console.WriteLine($"| npm partial-json 0.1.7: parse(buffer, ALL) per delta (node) | {npmMs:F2} ms | {npmBuckets[0]:F2} µs | {npmBuckets[^1]:F2} µs |");
Console.WriteLine($"| Relay, TryAppend per delta + TryWriteValue (whole value) every {FlushEvery} deltas | {flush:F2} ms | | |");
Console.WriteLine();
Console.WriteLine($"speed-up in total: {npmMs / relay.Ms:F1}x");
Console.WriteLine();
Console.WriteLine("per-delta time (µs) by tenth of the document:");
Console.WriteLine("| tenth | " + string.Join(" | ", Enumerable.Range(1, Buckets)) + " |");
Console.WriteLine("|---|" + string.Concat(Enumerable.Repeat("---|", Buckets)));
Console.WriteLine("| Relay | " + string.Join(" | ", relay.BucketUs.Select(v => v.ToString("F2", CultureInfo.InvariantCulture))) + " |");
Console.WriteLine("| npm | " + string.Join(" | ", npmBuckets.Select(v => v.ToString("F1", CultureInfo.InvariantCulture))) + " |");

var plot = Path.Combine(SourceDirectory(), "per-delta.svg");
File.WriteAllText(plot, Plot(relay.BucketUs, npmBuckets, deltas.Count, Encoding.UTF8.GetByteCount(document)));
Console.WriteLine();
Console.WriteLine($"plot: {plot}");
return 0;

// Per-delta time by tenth of the document, both parsers, on a log scale (one SVG, no plotting dependency).
static string Plot(double[] relayUs, double[] npmUs, int deltaCount, int bytes)
{
    const int Width = 640, Height = 360, Left = 70, Right = 20, Top = 40, Bottom = 50;
    var min = Math.Floor(Math.Log10(relayUs.Concat(npmUs).Min()));
    var max = Math.Ceiling(Math.Log10(relayUs.Concat(npmUs).Max()));
    double X(int i) => Left + ((Width - Left - Right) * (i + 0.5) / relayUs.Length);
    double Y(double us) => Top + ((Height - Top - Bottom) * (max - Math.Log10(us)) / (max - min));
    string Line(double[] values, string color) => $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2.5\" points=\""
        + string.Join(' ', values.Select((v, i) => FormattableString.Invariant($"{X(i):F1},{Y(v):F1}"))) + "\"/>";
    var svg = new StringBuilder();
    svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" font-family=\"sans-serif\" font-size=\"12\">");
    svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"22\" font-size=\"14\">Time per delta as the document grows ({bytes:N0} bytes, {deltaCount:N0} o200k deltas)</text>");
    for (var e = min; e <= max; e++)
    {
        var y = Y(Math.Pow(10, e));
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{y:F1}\" y2=\"{y:F1}\" stroke=\"#ddd\"/><text x=\"{Left - 8}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Math.Pow(10, e):G} µs</text>");
    }

    for (var i = 0; i < relayUs.Length; i++)
    {
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(i):F1}\" y=\"{Height - Bottom + 18}\" text-anchor=\"middle\">{(i + 1) * 10}%</text>");
    }

    svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Left + Width - Right) / 2}\" y=\"{Height - 12}\" text-anchor=\"middle\">position in the document (tenths)</text>");
    svg.Append(Line(npmUs, "#c0392b")).Append(Line(relayUs, "#2471a3"));
    svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(0)}\" y=\"{Y(npmUs[0]) - 10:F1}\" fill=\"#c0392b\">npm partial-json, re-parsing the buffer per delta</text>");
    svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(0)}\" y=\"{Y(relayUs[0]) - 10:F1}\" fill=\"#2471a3\">Relay PartialJsonParser, incremental</text>");
    return svg.Append("</svg>").ToString();
}

// The script runs beside its node_modules (npm ci in bench/PartialJson/node).
static string SourceDirectory([System.Runtime.CompilerServices.CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;

static (double Ms, double[] BucketUs) FeedAndRead(List<string> deltas, int buckets)
{
    var parser = new PartialJsonParser();
    var perBucket = (deltas.Count + buckets - 1) / buckets;
    var ticks = new long[buckets];
    var start = Stopwatch.GetTimestamp();
    var seen = 0;
    for (var i = 0; i < deltas.Count; i++)
    {
        var t0 = Stopwatch.GetTimestamp();
        parser.TryAppend(deltas[i].AsSpan());
        seen += parser.TryGetValue(out _) ? 1 : 0;
        ticks[i / perBucket] += Stopwatch.GetTimestamp() - t0;
    }

    var total = Stopwatch.GetElapsedTime(start);
    if (!parser.TryComplete() || seen == 0)
    {
        throw new InvalidOperationException("the document did not parse");
    }

    return (total.TotalMilliseconds, ticks.Select((t, b) => t * 1e6 / Stopwatch.Frequency / Math.Min(perBucket, deltas.Count - (b * perBucket))).ToArray());
}

static double FeedAndWriteEveryFlush(List<string> deltas, int flushEvery)
{
    var parser = new PartialJsonParser();
    var buffer = new System.Buffers.ArrayBufferWriter<byte>();
    using var writer = new Utf8JsonWriter(buffer);
    var start = Stopwatch.GetTimestamp();
    for (var i = 0; i < deltas.Count; i++)
    {
        parser.TryAppend(deltas[i].AsSpan());
        if (i % flushEvery == flushEvery - 1)
        {
            buffer.ResetWrittenCount();
            writer.Reset();
            parser.TryWriteValue(writer);
            writer.Flush();
        }
    }

    return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
}

static List<string> Tokenize(string text)
{
    var tokenizer = TiktokenTokenizer.CreateForModel("gpt-4o");
    var deltas = new List<string>();
    var at = 0;
    foreach (var token in tokenizer.EncodeToTokens(text, out _))
    {
        // A token inside a multi-byte character has an overlapping range: the character goes with its last token.
        var end = Math.Max(at, token.Offset.End.GetOffset(text.Length));
        if (end > at)
        {
            deltas.Add(text[at..end]);
            at = end;
        }
    }

    if (at < text.Length)
    {
        deltas.Add(text[at..]);
    }

    return deltas;
}

static string BuildDocument(int targetBytes)
{
    string[] names = ["Ada Lovelace", "Grace Hopper", "東京タワー", "Zoë Ørsted", "Ελένη", "Иван Петров", "🚀 Launch Team", "José Núñez"];
    string[] words = ["quarterly", "revenue", "grew", "by", "customer", "retention", "improved", "naïve", "café", "日本語", "データ", "🎉", "with", "the", "new", "pipeline"];
    var random = new Random(1);
    var buffer = new System.Buffers.ArrayBufferWriter<byte>();
    using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
    {
        writer.WriteStartObject();
        writer.WriteString("report", "Customer accounts, Q4");
        writer.WriteStartArray("accounts");
        for (var i = 0; buffer.WrittenCount < targetBytes - 400; i++)
        {
            writer.Flush();
            writer.WriteStartObject();
            writer.WriteNumber("id", 1000 + i);
            writer.WriteString("name", names[random.Next(names.Length)]);
            writer.WriteString("status", random.Next(3) switch { 0 => "active", 1 => "paused", _ => "closed" });
            writer.WriteNumber("balance", Math.Round(random.NextDouble() * 10_000, 2));
            writer.WriteBoolean("verified", random.Next(2) == 0);
            writer.WriteString("summary", string.Join(' ', Enumerable.Range(0, 8).Select(_ => words[random.Next(words.Length)])));
            writer.WriteStartArray("tags");
            for (var t = random.Next(1, 4); t > 0; t--)
            {
                writer.WriteStringValue(words[random.Next(words.Length)]);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    return Encoding.UTF8.GetString(buffer.WrittenSpan);
}

using System.Buffers;
using System.Net.Http.Json;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using MockInference;
using Relay.Middleware.Cadence;
using Relay.Middleware.Requests;
using Relay.Middleware.StructuredOutput;

namespace Relay.Benchmarks;

/// <summary>
/// Structured output: CPU per token of a real structured stream (MockInference's JSON reply for a nested schema, o200k tokens,
/// captured once) through the whole event pipeline, without and with <c>stream_options.partial_json</c> and schema
/// validation, at the default cadence (8 tokens per flush) and with every token its own event. Goal: partial_json on
/// costs at most 1.5x the same stream without it. Each operation is one whole stream (its request's schema compiled
/// too): per-token figures divide by the content token count the set-up prints.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class StructuredOutputBenchmarks
{
    private const string Schema = """
        {"type":"object","additionalProperties":false,"required":["title","priority","labels","steps"],
         "properties":{"title":{"type":"string"},"priority":{"enum":["low","normal","urgent"]},
          "labels":{"type":"array","items":{"type":"string"}},
          "steps":{"type":"array","items":{"type":"object","additionalProperties":false,"required":["n","text"],
            "properties":{"n":{"type":"integer"},"text":{"type":"string"},"done":{"type":"boolean"}}}}}}
        """;

    private readonly ArrayBufferWriter<byte> _output = new(1 << 22);
    private byte[] _stream = [];
    private int _tokens;

    [Params(8, 1)]
    public int TokensPerFlush { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        await using var mock = await MockInferenceServer.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(mock.Urls.First()) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new
            {
                model = "mock",
                stream = true,
                messages = new[] { new { role = "user", content = "a ticket" } },
                response_format = new { type = "json_schema", json_schema = new { name = "ticket", schema = JsonDocument.Parse(Schema).RootElement } },
            }),
        };
        request.Headers.Add("x-mock-reply", "json");
        request.Headers.Add("x-mock-seed", "3");
        request.Headers.Add("x-mock-ttft-ms", "0");
        request.Headers.Add("x-mock-tokens-per-second", "0");
        using var response = await client.SendAsync(request);
        _stream = await response.Content.ReadAsByteArrayAsync();
        _tokens = System.Text.Encoding.UTF8.GetString(_stream).Split("\"content\":\"").Length - 1;
        Console.WriteLine($"// structured stream: {_stream.Length:N0} bytes, {_tokens} content tokens");
    }

    [Benchmark(Baseline = true)]
    public int Off() => Run(null);

    [Benchmark]
    public int Validate() => Run("""{"validate_schema":true}""");

    [Benchmark]
    public int PartialJson() => Run("""{"partial_json":true,"validate_schema":false}""");

    [Benchmark]
    public int PartialJsonAndValidate() => Run("""{"partial_json":true,"validate_schema":true}""");

    /// <summary>
    /// <c>structured-cpu [rounds]</c>: the same cases measured in process CPU time, interleaved round by round, for a
    /// machine too loaded for wall-clock figures (other processes' time is not counted). Prints a table.
    /// </summary>
    public static async Task<int> MeasureCpuAsync(string[] args)
    {
        var rounds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15;
        const int StreamsPerRound = 200;
        var cases = new (string Name, string? Options)[]
        {
            ("off", null),
            ("validate", """{"validate_schema":true}"""),
            ("partial_json", """{"partial_json":true,"validate_schema":false}"""),
            ("partial_json + validate", """{"partial_json":true,"validate_schema":true}"""),
        };
        var bench = new StructuredOutputBenchmarks();
        await bench.SetupAsync();
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        Console.WriteLine($"| tokens per flush | case | CPU µs / stream | CPU µs / token | vs off |");
        Console.WriteLine("|---:|---|---:|---:|---:|");
        foreach (var perFlush in new[] { 8, 1 })
        {
            bench.TokensPerFlush = perFlush;
            var samples = cases.Select(static _ => new List<double>()).ToArray();
            for (var round = 0; round < rounds + 2; round++)
            {
                for (var c = 0; c < cases.Length; c++)
                {
                    process.Refresh();
                    var before = process.TotalProcessorTime;
                    for (var i = 0; i < StreamsPerRound; i++)
                    {
                        bench.Run(cases[c].Options);
                    }

                    process.Refresh();
                    if (round >= 2)
                    {
                        samples[c].Add((process.TotalProcessorTime - before).TotalMicroseconds / StreamsPerRound);
                    }
                }
            }

            var medians = samples.Select(static s => s.Order().ElementAt(s.Count / 2)).ToArray();
            for (var c = 0; c < cases.Length; c++)
            {
                Console.WriteLine($"| {perFlush} | {cases[c].Name} | {medians[c]:F1} | {medians[c] / bench._tokens:F2} | {medians[c] / medians[0]:F2}x |");
            }
        }

        return 0;
    }

    private int Run(string? streamOptions)
    {
        StructuredOutputRequest? structured = null;
        if (streamOptions is not null)
        {
            using var body = JsonDocument.Parse("{\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"t\",\"schema\":" + Schema + "}}}");
            using var options = JsonDocument.Parse(streamOptions);
            structured = StructuredOutputRequest.TryRead(body.RootElement, options.RootElement, stream: true, routeValidates: true, out ChatRequestInspector.Failure? _, out _);
        }

        _output.ResetWrittenCount();
        using var pipeline = new StreamEventPipeline(
            new StreamPipelineSettings { MaxTokensPerFlush = TokensPerFlush, StructuredOutput = structured }, TimeProvider.System);
        for (var offset = 0; offset < _stream.Length; offset += 4096)
        {
            pipeline.Process(new ReadOnlySequence<byte>(_stream, offset, Math.Min(4096, _stream.Length - offset)), _output);
        }

        pipeline.Complete(_output);
        return _output.WrittenCount;
    }
}

using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text;
using BenchmarkDotNet.Attributes;
using Relay.Middleware.Cadence;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Benchmarks;

/// <summary>
/// Cost per event of parsing a chat stream: Relay's push parser vs the framework's SseParser over the same
/// bytes, and the whole pipeline on its pass-through (1 token per flush) and coalescing (8 tokens) paths.
/// Each operation handles <see cref="Events"/> events: divide by it for per-event figures.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class SseParsingBenchmarks
{
    public const int Events = 1000;

    private byte[] _stream = [];
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);

    [GlobalSetup]
    public void Setup()
    {
        var sb = new StringBuilder();
        for (var i = 0; i < Events; i++)
        {
            sb.Append("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token")
              .Append(i % 10).Append("\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        }

        _stream = Encoding.UTF8.GetBytes(sb.ToString());
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Events)]
    public int RelayParser()
    {
        using var parser = new IncrementalSseParser();
        var count = 0;
        // Reads of 4 KiB, as from a socket.
        for (var offset = 0; offset < _stream.Length; offset += 4096)
        {
            parser.Append(_stream.AsSpan(offset, Math.Min(4096, _stream.Length - offset)));
            while (parser.TryRead(out _))
            {
                count += parser.Data.Length;
            }
        }

        return count;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int FrameworkSseParser()
    {
        var count = 0;
        using var stream = new MemoryStream(_stream, writable: false);
        foreach (var item in SseParser.Create(stream, static (_, data) => data.Length).Enumerate())
        {
            count += item.Data;
        }

        return count;
    }

    [Benchmark(OperationsPerInvoke = Events)]
    public int PipelinePassThroughPath() => RunPipeline(1);

    [Benchmark(OperationsPerInvoke = Events)]
    public int PipelineCoalescingPath() => RunPipeline(8);

    /// <summary>A stream Relay does not rewrite (not chat completions): events are only delimited, no JSON work.</summary>
    [Benchmark(OperationsPerInvoke = Events)]
    public int PipelineUnrewrittenStream() => RunPipeline(1, StreamKind.PassThrough);

    private int RunPipeline(int tokens, StreamKind kind = StreamKind.ChatCompletions)
    {
        _output.ResetWrittenCount();
        using var pipeline = new StreamEventPipeline(new StreamPipelineSettings { MaxTokensPerFlush = tokens, Kind = kind }, TimeProvider.System);
        for (var offset = 0; offset < _stream.Length; offset += 4096)
        {
            pipeline.Process(new ReadOnlySequence<byte>(_stream, offset, Math.Min(4096, _stream.Length - offset)), _output);
        }

        pipeline.Complete(_output);
        return _output.WrittenCount;
    }
}

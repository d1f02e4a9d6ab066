using BenchmarkDotNet.Running;

namespace Relay.Benchmarks;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["compression", ..])
        {
            return await CompressionBench.RunAsync(args);
        }

        if (args is ["structured-cpu", ..])
        {
            return await StructuredOutputBenchmarks.MeasureCpuAsync(args);
        }

        if (args is ["ws-cutover" or "ws-frames", ..])
        {
            return await WebSocketBridgeBench.RunAsync(args);
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}

namespace Relay.Benchmarks; public static class Program { public static void Main() { } }

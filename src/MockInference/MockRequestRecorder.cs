using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace MockInference;

/// <summary>
/// Bounded store of <see cref="MockRequestRecord"/>s: the oldest are dropped past <see cref="Capacity"/>
/// so a long benchmark cannot grow the mock without limit.
/// </summary>
internal sealed class MockRequestRecorder
{
    public const int Capacity = 10_000;
    public const string RequestIdHeader = "x-mock-request-id";

    private readonly ConcurrentDictionary<string, MockRequestRecord> _records = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _order = new();

    // A per-process prefix keeps ids unique when several mock instances feed one benchmark.
    private readonly string _prefix = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()));
    private long _counter;

    public string NextId() => $"{_prefix}{Interlocked.Increment(ref _counter):x}";

    /// <summary>Creates and stores a record for a request and sets the id response header.</summary>
    public MockRequestRecord Start(HttpContext context)
    {
        var record = new MockRequestRecord
        {
            Id = NextId(),
            Path = context.Request.Path.Value ?? "",
            Query = context.Request.QueryString.Value ?? "",
            Authorization = context.Request.Headers.Authorization is { Count: > 0 } auth ? auth.ToString() : null,
            ArrivedUs = MonotonicClock.NowMicroseconds(),
        };
        context.Response.Headers[RequestIdHeader] = record.Id;
        _records[record.Id] = record;
        _order.Enqueue(record.Id);
        while (_records.Count > Capacity && _order.TryDequeue(out var oldest))
        {
            _records.TryRemove(oldest, out _);
        }

        return record;
    }

    public bool TryGet(string id, out MockRequestRecord record) => _records.TryGetValue(id, out record!);
}

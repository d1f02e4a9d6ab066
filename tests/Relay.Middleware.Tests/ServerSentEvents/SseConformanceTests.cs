using System.Text;
using System.Text.Json;
using Relay.Middleware.ServerSentEvents;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.ServerSentEvents;

/// <summary>
/// Every case of ../shared/testdata/sse-conformance/sse_cases.json (from rexxars/eventsource-parser, MIT;
/// dotnet/runtime System.Net.ServerSentEvents tests, MIT; openai-python/openai-node, Apache-2.0), as given and
/// one byte per read. WHATWG semantics: <c>expected_events</c>, not the SDK variant.
/// </summary>
public sealed class SseConformanceTests
{
    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        if (TestDataPaths.Root is null)
        {
            data.Add("(test data missing)", false);
            return data;
        }

        foreach (var c in Load().EnumerateArray())
        {
            data.Add(c.GetProperty("id").GetString()!, false);
            data.Add(c.GetProperty("id").GetString()!, true);
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(Cases))]
    public void Parser_ConformanceCase_YieldsExpectedEvents(string id, bool oneBytePerRead)
    {
        var c = Load().EnumerateArray().Single(x => x.GetProperty("id").GetString() == id);
        var reads = c.GetProperty("chunks_hex").EnumerateArray().Select(h => Convert.FromHexString(h.GetString()!)).ToList();
        if (oneBytePerRead)
        {
            reads = reads.SelectMany(r => r).Select(b => new[] { b }).ToList();
        }

        using var parser = new IncrementalSseParser(initialBufferSize: 16);
        var events = new List<(string? Event, string Data, string Id)>();
        var retries = new List<long>();
        foreach (var read in reads)
        {
            parser.Append(read);
            while (parser.TryRead(out var kind))
            {
                if (kind == SseItemKind.Event)
                {
                    events.Add((parser.EventType.IsEmpty ? null : Encoding.UTF8.GetString(parser.EventType), Encoding.UTF8.GetString(parser.Data), Encoding.UTF8.GetString(parser.LastEventId)));
                }
                else if (kind == SseItemKind.Retry)
                {
                    retries.Add(parser.Retry!.Value);
                }
            }
        }

        var expected = c.GetProperty("expected_events").EnumerateArray().ToList();
        Assert.Equal(expected.Count, events.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var type = e.GetProperty("event");
            Assert.Equal(type.ValueKind == JsonValueKind.Null ? null : type.GetString(), events[i].Event);
            Assert.Equal(e.GetProperty("data").GetString(), events[i].Data);
            if (e.TryGetProperty("last_event_id", out var lastId))
            {
                Assert.Equal(lastId.GetString(), events[i].Id);
            }
        }

        if (c.TryGetProperty("expected_retry_ms", out var expectedRetry) && expectedRetry.ValueKind == JsonValueKind.Array)
        {
            Assert.Equal(expectedRetry.EnumerateArray().Select(r => r.GetInt64()), retries);
        }
        else if (c.TryGetProperty("expected_retry_ms", out var single) && single.ValueKind == JsonValueKind.Number)
        {
            Assert.Equal(single.GetInt64(), retries.Last());
        }
    }

    private static JsonElement Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestDataPaths.Get("sse-conformance", "sse_cases.json")));
        return doc.RootElement.GetProperty("cases").Clone();
    }
}

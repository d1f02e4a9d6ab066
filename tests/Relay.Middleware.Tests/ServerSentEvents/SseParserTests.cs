using System.Text;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Tests.ServerSentEvents;

/// <summary>The parser's own cases, as theories over LF/CR/CRLF line endings x whole input / one byte per read.</summary>
public sealed class SseParserTests
{
    public static TheoryData<string, bool> Endings() => new()
    {
        { "\n", false }, { "\n", true }, { "\r", false }, { "\r", true }, { "\r\n", false }, { "\r\n", true },
    };

    [Theory]
    [MemberData(nameof(Endings))]
    public void Parser_MultiLineDataAndComments_SurfacedInOrder(string eol, bool trickle)
    {
        var items = Parse($": keep-alive{eol}event: update{eol}data: a{eol}data:  b{eol}data{eol}id: 7{eol}{eol}:x{eol}data: c{eol}{eol}", trickle);
        Assert.Equal(["comment: keep-alive", "event update data a\n b\n id 7", "comment:x", "event  data c id 7"], items);
    }

    [Theory]
    [MemberData(nameof(Endings))]
    public void Parser_BomAtStart_IsSkippedEvenWhenSplit(string eol, bool trickle)
    {
        var bytes = Encoding.UTF8.GetBytes($"\uFEFFdata: x{eol}{eol}\uFEFFdata: y{eol}{eol}");
        var items = Parse(bytes, trickle);
        // Only the first BOM is special: the second one is part of a field name "\uFEFFdata", which is ignored.
        Assert.Equal(["event  data x id "], items);
    }

    [Theory]
    [MemberData(nameof(Endings))]
    public void Parser_EventTypeWithoutData_IsNotDispatched(string eol, bool trickle)
    {
        Assert.Equal(["event  data  id "], Parse($"event: ping{eol}{eol}data{eol}{eol}", trickle));
    }

    [Fact]
    public void Parser_CrAtEndOfReadThenLf_IsOneLineEnding()
    {
        using var parser = new IncrementalSseParser();
        parser.Append("data: a\r"u8);
        Assert.False(parser.TryRead(out _));
        parser.Append("\n\r"u8);
        Assert.True(parser.TryRead(out var kind));
        Assert.Equal(SseItemKind.Event, kind);
        Assert.Equal("a"u8.ToArray(), parser.Data.ToArray());
        parser.Append("\ndata: b\n\n"u8);
        Assert.True(parser.TryRead(out _));
        Assert.Equal("b"u8.ToArray(), parser.Data.ToArray());
        Assert.True(parser.AtEventBoundary);
    }

    [Fact]
    public void Parser_EventEndingInCrCr_IsDispatchedWithoutWaitingForMoreInput()
    {
        using var parser = new IncrementalSseParser();
        parser.Append("data: a\r\r"u8);
        Assert.True(parser.TryRead(out _));
        Assert.Equal("a"u8.ToArray(), parser.Data.ToArray());
    }

    [Fact]
    public void Parser_LongLineInTinyBuffer_IsParsedWhole()
    {
        var payload = new string('x', 100_000);
        Assert.Equal([$"event  data {payload} id "], Parse($"data: {payload}\n\n", trickle: false));
    }

    private static List<string> Parse(string text, bool trickle) => Parse(Encoding.UTF8.GetBytes(text), trickle);

    private static List<string> Parse(byte[] bytes, bool trickle)
    {
        using var parser = new IncrementalSseParser(initialBufferSize: 16);
        var items = new List<string>();
        var reads = trickle ? bytes.Select(b => new[] { b }) : [bytes];
        foreach (var read in reads)
        {
            parser.Append(read);
            while (parser.TryRead(out var kind))
            {
                items.Add(kind switch
                {
                    SseItemKind.Comment => "comment:" + Encoding.UTF8.GetString(parser.Comment),
                    SseItemKind.Retry => $"retry {parser.Retry}",
                    _ => $"event {Encoding.UTF8.GetString(parser.EventType)} data {Encoding.UTF8.GetString(parser.Data)} id {Encoding.UTF8.GetString(parser.LastEventId)}",
                });
            }
        }

        return items;
    }
}

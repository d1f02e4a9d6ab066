using System.Text;
using Relay.Middleware.ServerSentEvents;

namespace Relay.Middleware.Tests.ServerSentEvents;

/// <summary>
/// A stream holds pooled buffers only for the bytes in hand. Held for the stream's lifetime, the
/// arrays of hundreds of concurrent streams outnumber what the shared pool keeps, so every stream allocated its own
/// (garbage per request, and memory per idle stream).
/// </summary>
public sealed class PooledBufferHoldingTests
{
    [Fact]
    public void Parser_EveryByteConsumed_HoldsNoPooledBuffer()
    {
        using var parser = new IncrementalSseParser();
        Assert.Equal(0, parser.PooledBytes);

        parser.Append("data: a\n\nevent: x\ndata: b\n\n"u8);
        Assert.Equal(["a", "b"], ReadAll(parser));
        Assert.Equal(0, parser.PooledBytes);
    }

    [Fact]
    public void Parser_PartialEvent_HoldsItsBytesUntilItEnds()
    {
        using var parser = new IncrementalSseParser();
        parser.Append("data: par"u8);
        Assert.Empty(ReadAll(parser));
        Assert.True(parser.PooledBytes > 0);

        parser.Append("tial\n\n"u8);
        Assert.Equal(["partial"], ReadAll(parser));
        Assert.Equal(0, parser.PooledBytes);
    }

    [Fact]
    public void Buffer_Emptied_ReturnsItsArray_AndGrowsAgainOnTheNextWrite()
    {
        using var buffer = new PooledByteBuffer(64);
        buffer.Append("hello"u8);
        Assert.True(buffer.PooledBytes >= 64);

        buffer.RemovePrefix(5);
        Assert.Equal(0, buffer.PooledBytes);
        buffer.Append("again"u8);
        Assert.Equal("again", Encoding.UTF8.GetString(buffer.WrittenSpan));

        buffer.Clear();
        Assert.Equal(0, buffer.PooledBytes);
        Assert.True(buffer.WrittenSpan.IsEmpty);
    }

    private static List<string> ReadAll(IncrementalSseParser parser)
    {
        var events = new List<string>();
        while (parser.TryRead(out var kind))
        {
            if (kind == SseItemKind.Event)
            {
                events.Add(Encoding.UTF8.GetString(parser.Data));
            }
        }

        return events;
    }
}

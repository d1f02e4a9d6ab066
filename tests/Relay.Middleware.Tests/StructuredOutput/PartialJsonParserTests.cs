using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Relay.Middleware.StructuredOutput;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>The partial-value semantics (npm partial-json, Allow.ALL) one kind of incomplete value at a time, and the parser's costs.</summary>
public sealed class PartialJsonParserTests
{
    [Theory]
    [InlineData("", null)]
    [InlineData("  ", null)]
    [InlineData("\"Ali", "\"Ali\"")]
    [InlineData("{\"name\":\"Ali", "{\"name\":\"Ali\"}")]
    [InlineData("{\"name\":\"Alice\",\"age\":", "{\"name\":\"Alice\"}")]
    [InlineData("{\"name\":\"Alice\",\"ag", "{\"name\":\"Alice\"}")]
    [InlineData("{\"name\":\"Alice\",\"age\"", "{\"name\":\"Alice\"}")]
    [InlineData("{\"a\":\"x\\", "{\"a\":\"x\"}")]
    [InlineData("{\"a\":\"x\\u00", "{\"a\":\"x\"}")]
    [InlineData("{\"a\":\"x\\u00e9", "{\"a\":\"x\u00e9\"}")]
    [InlineData("{\"a\":\"\\ud83d", "{\"a\":\"\"}")]
    [InlineData("{\"a\":\"\\ud83d\\ude00", "{\"a\":\"\U0001F600\"}")]
    [InlineData("[12.", "[12]")]
    [InlineData("[2.5e-", "[2.5]")]
    [InlineData("[2.5e", "[2.5]")]
    [InlineData("[-", "[]")]
    [InlineData("-", null)]
    [InlineData("[t", "[true]")]
    [InlineData("[fals", "[false]")]
    [InlineData("[nu", "[null]")]
    [InlineData("nu", "null")]
    [InlineData("[1,{\"x\":", "[1,{}]")]
    [InlineData("{\"a\":[1,[2,{\"b\":\"c", "{\"a\":[1,[2,{\"b\":\"c\"}]]}")]
    [InlineData("{\"a\":1,\"a\":2", "{\"a\":2}")]
    public void IncompleteValue_ShowsAsPartialJsonAllowAll(string text, string? expected)
    {
        var actual = PartialValues.Of(text, out var parser);
        Assert.Null(parser.Error);
        Assert.True(expected is null ? actual is null : PartialValues.JsonEquals(actual, JsonNode.Parse(expected)), $"{expected} != {actual}");
    }

    [Fact]
    public void CharacterSplitAcrossByteDeltas_IsShownOnlyWhenWhole()
    {
        var utf8 = Encoding.UTF8.GetBytes("[\"\U0001F600");
        var parser = new PartialJsonParser();
        Assert.True(parser.TryAppend(utf8.AsSpan(0, utf8.Length - 2)));
        Assert.Equal("[\"\"]", PartialValues.Current(parser));
        Assert.True(parser.TryAppend(utf8.AsSpan(utf8.Length - 2)));
        Assert.Equal("[\"\\uD83D\\uDE00\"]", PartialValues.Current(parser));
    }

    [Fact]
    public void SurrogatePairSplitAcrossTextDeltas_IsJoined()
    {
        var text = "[\"\U0001F600\"]";
        var parser = new PartialJsonParser();
        Assert.True(parser.TryAppend(text.AsSpan(0, 3)));
        Assert.True(parser.TryAppend(text.AsSpan(3)));
        Assert.True(parser.TryComplete());
        parser.TryGetValue(out var value);
        Assert.Equal("\U0001F600", value![0]!.GetValue<string>());
    }

    [Fact]
    public void ValueReturned_IsLiveAndTheShownTailIsReplacedOnTheNextDelta()
    {
        var parser = new PartialJsonParser();
        parser.TryAppend("{\"a\":\"x"u8);
        Assert.True(parser.TryGetValue(out var first));
        Assert.Equal("x", first!["a"]!.GetValue<string>());

        parser.TryAppend("y\",\"b\":1}"u8);
        Assert.True(parser.TryComplete());
        Assert.True(parser.TryGetValue(out var last));
        Assert.Same(first, last);
        Assert.Equal("{\"a\":\"xy\",\"b\":1}", last!.ToJsonString());
    }

    [Fact]
    public void DuplicateKey_ShowsTheNewerPartialValueThenItsFinalValue()
    {
        var parser = new PartialJsonParser();
        parser.TryAppend("{\"a\":\"x\",\"b\":0,\"a\":\"y"u8);
        Assert.Equal("{\"a\":\"y\",\"b\":0}", PartialValues.Current(parser));
        parser.TryAppend("z"u8);
        Assert.Equal("{\"a\":\"yz\",\"b\":0}", PartialValues.Current(parser));
        parser.TryAppend("\"}"u8);
        Assert.True(parser.TryComplete());
        Assert.Equal("{\"a\":\"yz\",\"b\":0}", PartialValues.Current(parser));
    }

    [Theory]
    [InlineData("{\"a\":1,}", 7)]
    [InlineData("[1 2]", 3)]
    [InlineData("{\"a\" 1}", 5)]
    [InlineData("[01]", 2)]
    [InlineData("[\"a\u0001\"]", 3)]
    [InlineData("tru e", 3)]
    [InlineData("{} {}", 3)]
    public void InvalidText_IsRejectedAtTheFirstBadByte(string text, long position)
    {
        var parser = new PartialJsonParser();
        Assert.False(parser.TryAppend(Encoding.UTF8.GetBytes(text)));
        Assert.Equal(position, parser.Error!.BytePosition);
        Assert.False(parser.TryAppend("1"u8));
    }

    [Theory]
    [InlineData("{\"a\":1")]
    [InlineData("\"abc")]
    [InlineData("-")]
    [InlineData("")]
    public void TextEndingEarly_IsRejectedAtItsEnd(string text)
    {
        var parser = new PartialJsonParser();
        Assert.True(parser.TryAppend(Encoding.UTF8.GetBytes(text)));
        Assert.False(parser.TryComplete());
        Assert.Equal(Encoding.UTF8.GetByteCount(text), parser.Error!.BytePosition);
    }

    [Fact]
    public void RootNumber_IsCompleteOnlyWhenTheTextEnds()
    {
        var parser = new PartialJsonParser();
        parser.TryAppend("12"u8);
        Assert.False(parser.IsComplete);
        Assert.True(parser.TryComplete());
        Assert.True(parser.IsComplete);
        Assert.Equal("12", PartialValues.Current(parser));
    }

    [Fact]
    public void NestingDeeperThanMaxDepth_IsRejected()
    {
        var parser = new PartialJsonParser(maxDepth: 3);
        Assert.True(parser.TryAppend("[[["u8));
        Assert.False(parser.TryAppend("["u8));
        Assert.Equal(3, parser.Error!.BytePosition);
    }

    [Fact]
    public void Feeding_AllocatesInProportionToTheDocumentNotItsSquare()
    {
        // Re-parsing the buffer per delta (what npm partial-json callers do) allocates O(n^2); this parser O(n).
        static long AllocatedFeeding(int items)
        {
            var document = Encoding.UTF8.GetBytes(
                "{\"items\":[" + string.Join(",", Enumerable.Range(0, items).Select(i => $"{{\"id\":{i},\"name\":\"item number {i}\",\"ok\":true}}")) + "]}");
            var parser = new PartialJsonParser();
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var at = 0; at < document.Length; at += 4)
            {
                parser.TryAppend(document.AsSpan(at, Math.Min(4, document.Length - at)));
            }

            Assert.True(parser.TryComplete());
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }

        AllocatedFeeding(100);
        var small = AllocatedFeeding(1_000);
        var large = AllocatedFeeding(8_000);
        Assert.InRange(large / (double)small, 4, 12);
    }

    [Fact]
    public void Observer_HearsValuesAsTheyStreamWithStringTextInChunks()
    {
        var observer = new RecordingObserver();
        var parser = new PartialJsonParser(PartialJsonParser.DefaultMaxDepth, observer);
        parser.TryAppend("{\"a\":\"x\\n"u8);
        parser.TryAppend("y\",\"b\":[1.5,tr"u8);
        parser.TryAppend("ue]}"u8);
        Assert.True(parser.TryComplete());
        Assert.Equal(
            ["start Object", "name a", "start String", "chunk x\n", "chunk y", "end String", "name b", "start Array", "start Number", "end Number 1.5", "start True", "end True", "end Array", "end Object"],
            observer.Events);
    }

    private sealed class RecordingObserver : IJsonStreamObserver
    {
        public List<string> Events { get; } = [];

        public void OnValueStart(JsonValueKind kind) => Events.Add($"start {kind}");

        public void OnPropertyName(ReadOnlySpan<byte> utf8Name) => Events.Add($"name {Encoding.UTF8.GetString(utf8Name)}");

        public void OnStringChunk(ReadOnlySpan<byte> utf8) => Events.Add($"chunk {Encoding.UTF8.GetString(utf8)}");

        public void OnValueEnd(JsonValueKind kind, ReadOnlySpan<byte> numberText) =>
            Events.Add(numberText.IsEmpty ? $"end {kind}" : $"end {kind} {Encoding.UTF8.GetString(numberText)}");
    }
}

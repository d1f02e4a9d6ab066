using System.Text.Json;
using Relay.Middleware.StructuredOutput;
using Relay.Middleware.Tests.Support;

namespace Relay.Middleware.Tests.StructuredOutput;

/// <summary>
/// Every document of ../shared/testdata/json-conformance/JSONTestSuite/test_parsing (nst/JSONTestSuite, MIT), fed
/// one byte at a time: a valid (<c>y_</c>) document's every prefix is accepted and the whole is complete; an
/// invalid (<c>n_</c>) one is rejected at the byte where System.Text.Json's incremental reader rejects it; an
/// implementation-defined (<c>i_</c>) one is treated as System.Text.Json treats it. There are no differences.
/// </summary>
public sealed class JsonConformanceTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        if (TestDataPaths.Root is null)
        {
            data.Add("(test data missing)");
            return data;
        }

        foreach (var path in Directory.GetFiles(Folder(), "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(path));
        }

        return data;
    }

    [TestDataTheory]
    [MemberData(nameof(Files))]
    public void Document_FedOneByteAtATime_IsRejectedWhereSystemTextJsonRejectsIt(string name)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Folder(), name));
        var expected = SystemTextJsonRejection(bytes);
        var actual = OneByteAtATimeRejection(bytes);

        if (name.StartsWith("y_", StringComparison.Ordinal))
        {
            Assert.Null(expected);
        }

        Assert.Equal(expected, actual);
    }

    [TestDataFact]
    public void HundredThousandOpenBrackets_AreRejectedAtTheDepthLimitWithoutStackOverflow()
    {
        var bytes = File.ReadAllBytes(Path.Combine(Folder(), "n_structure_100000_opening_arrays.json"));
        var parser = new PartialJsonParser();

        Assert.False(parser.TryAppend(bytes));
        Assert.Equal(PartialJsonParser.DefaultMaxDepth, parser.Error!.BytePosition);
    }

    /// <summary>Where the parser, fed one byte per call, first refuses the text (its length when only the end is wrong).</summary>
    private static long? OneByteAtATimeRejection(byte[] bytes)
    {
        var parser = new PartialJsonParser();
        for (var i = 0; i < bytes.Length; i++)
        {
            if (!parser.TryAppend(bytes.AsSpan(i, 1)))
            {
                return parser.Error!.BytePosition;
            }

            // Every prefix of an accepted text has a value that can be read and written.
            PartialValues.Current(parser);
        }

        return parser.TryComplete() ? null : parser.Error!.BytePosition;
    }

    /// <summary>
    /// The byte at which <see cref="Utf8JsonReader"/> rejects the text when it is given ever longer prefixes with
    /// <c>isFinalBlock: false</c> (the shortest rejected prefix's last byte), or the text's length when only the
    /// final block is rejected; null when it accepts the whole.
    /// </summary>
    private static long? SystemTextJsonRejection(byte[] bytes)
    {
        for (var length = 1; length <= bytes.Length; length++)
        {
            if (!ReaderAccepts(bytes.AsSpan(0, length), isFinalBlock: false))
            {
                return length - 1;
            }
        }

        return ReaderAccepts(bytes, isFinalBlock: true) ? null : bytes.Length;
    }

    private static bool ReaderAccepts(ReadOnlySpan<byte> bytes, bool isFinalBlock)
    {
        var reader = new Utf8JsonReader(bytes, isFinalBlock, default);
        try
        {
            while (reader.Read())
            {
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Folder() => TestDataPaths.Get("json-conformance", "JSONTestSuite", "test_parsing");
}

using System.IO.Compression;
using System.Reflection;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace MockInference;

/// <summary>
/// Real BPE tokenization (o200k_base, the gpt-4o vocabulary) so token boundaries fall where real servers
/// put them: inside CJK characters, emoji and ZWJ sequences.
/// </summary>
internal sealed class MockTokenizer
{
    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.O200kBase";
    private const string VocabResourceSuffix = "o200k_base.tiktoken.deflate";

    // Loading o200k_base takes hundreds of milliseconds and the tokenizer is immutable and thread-safe,
    // so every host in the process (tests start many) shares one instance.
    private static readonly Lazy<TiktokenTokenizer> s_tokenizer =
        new(static () => TiktokenTokenizer.CreateForModel("gpt-4o"), LazyThreadSafetyMode.ExecutionAndPublication);

    // TiktokenTokenizer keeps its id -> bytes map internal (Decode returns strings, which cannot hold half a
    // character), so the byte pieces are read from the same vocabulary file it loads.
    private static readonly Lazy<byte[]?[]> s_tokenBytes =
        new(LoadTokenBytes, LazyThreadSafetyMode.ExecutionAndPublication);

    private static TiktokenTokenizer Tokenizer => s_tokenizer.Value;

    /// <summary>Loads the tokenizer and the byte table now rather than on the first request.</summary>
    public void WarmUp()
    {
        _ = GetTokenBytes(Encode("warm up")[0]);
    }

    public IReadOnlyList<int> Encode(string text) => Tokenizer.EncodeToIds(text);

    public int CountTokens(string text) => text.Length == 0 ? 0 : Tokenizer.CountTokens(text);

    /// <summary>
    /// The raw bytes of one token. A token can be a partial UTF-8 sequence, so this is bytes, never a string.
    /// </summary>
    public ReadOnlyMemory<byte> GetTokenBytes(int id)
    {
        var table = s_tokenBytes.Value;
        if ((uint)id < (uint)table.Length && table[id] is { } bytes)
        {
            return bytes;
        }

        // Special tokens are not in the vocabulary file; they are whole strings.
        return Encoding.UTF8.GetBytes(Tokenizer.Decode([id]));
    }

    private static byte[]?[] LoadTokenBytes()
    {
        var assembly = Assembly.Load(new AssemblyName(DataAssembly));
        var resource = assembly.GetManifestResourceNames().Single(static n => n.EndsWith(VocabResourceSuffix, StringComparison.Ordinal));
        using var deflate = new DeflateStream(assembly.GetManifestResourceStream(resource)!, CompressionMode.Decompress);
        using var reader = new StreamReader(deflate, Encoding.UTF8);

        // The package's file is tiktoken's "<base64 bytes> <rank>" per line, but with the rank left out
        // (implicit: the line number) after a "Capacity: N" header. Both forms are accepted.
        var table = new List<byte[]?>(200_064);
        var next = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            var space = line.IndexOf(' ', StringComparison.Ordinal);
            var id = space < 0 ? next : int.Parse(line.AsSpan(space + 1), System.Globalization.CultureInfo.InvariantCulture);
            next = id + 1;
            while (table.Count <= id)
            {
                table.Add(null);
            }

            table[id] = Convert.FromBase64String(space < 0 ? line : line[..space]);
        }

        return [.. table];
    }
}

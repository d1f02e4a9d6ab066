using System.Text;

namespace MockInference.Tests;

/// <summary>
/// Reads the content string of a chunk straight from its bytes, so raw invalid UTF-8 and lone surrogate
/// escapes (which JSON parsers reject) can be inspected.
/// </summary>
public static class ContentLiteral
{
    /// <summary>The literal's text between the quotes, escapes left as written; null when the event has no content.</summary>
    public static byte[]? Raw(byte[] data, string property = "content")
    {
        var key = Encoding.UTF8.GetBytes($"\"{property}\":\"");
        var start = data.AsSpan().IndexOf(key);
        if (start < 0)
        {
            return null;
        }

        start += key.Length;
        var i = start;
        while (data[i] != (byte)'"')
        {
            i += data[i] == (byte)'\\' ? 2 : 1;
        }

        return data[start..i];
    }

    /// <summary>Unescapes a literal into bytes; \uXXXX must be below U+0080 (true for the raw-bytes mode).</summary>
    public static byte[] UnescapeToBytes(byte[] literal)
    {
        var output = new List<byte>();
        for (var i = 0; i < literal.Length; i++)
        {
            if (literal[i] != (byte)'\\')
            {
                output.Add(literal[i]);
                continue;
            }

            var e = literal[++i];
            switch ((char)e)
            {
                case 'n': output.Add((byte)'\n'); break;
                case 'r': output.Add((byte)'\r'); break;
                case 't': output.Add((byte)'\t'); break;
                case 'b': output.Add((byte)'\b'); break;
                case 'f': output.Add((byte)'\f'); break;
                case 'u':
                    var code = Convert.ToInt32(Encoding.ASCII.GetString(literal, i + 1, 4), 16);
                    Assert.True(code < 0x80, "only ASCII escapes are expected here");
                    output.Add((byte)code);
                    i += 4;
                    break;
                default: output.Add(e); break;
            }
        }

        return [.. output];
    }
}

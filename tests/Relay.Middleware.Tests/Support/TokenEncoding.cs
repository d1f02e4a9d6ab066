using System.Text;

namespace Relay.Middleware.Tests.Support;

/// <summary>Encodes a piece of text as the raw content of a JSON string, the way an upstream might.</summary>
internal static class TokenEncoding
{
    /// <summary>UTF-8 bytes kept raw (possibly a partial character), only JSON's mandatory escapes applied.</summary>
    public static byte[] RawBytes(ReadOnlySpan<byte> utf8)
    {
        var output = new List<byte>(utf8.Length + 8);
        foreach (var b in utf8)
        {
            if (b is (byte)'"' or (byte)'\\')
            {
                output.Add((byte)'\\');
                output.Add(b);
            }
            else if (b < 0x20)
            {
                output.AddRange(Encoding.ASCII.GetBytes($"\\u{b:x4}"));
            }
            else
            {
                output.Add(b);
            }
        }

        return [.. output];
    }

    /// <summary>Every non-ASCII UTF-16 unit as a \uXXXX escape (a surrogate pair may be split across tokens).</summary>
    public static byte[] Escaped(ReadOnlySpan<char> utf16)
    {
        var sb = new StringBuilder();
        foreach (var c in utf16)
        {
            if (c is '"' or '\\')
            {
                sb.Append('\\').Append(c);
            }
            else if (c < 0x20 || c > 0x7E)
            {
                sb.Append($"\\u{(int)c:x4}");
            }
            else
            {
                sb.Append(c);
            }
        }

        return Encoding.ASCII.GetBytes(sb.ToString());
    }
}

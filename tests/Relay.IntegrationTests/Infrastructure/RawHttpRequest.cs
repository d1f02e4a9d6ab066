using System.Text;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>One request as <see cref="RawHttpUpstream"/> received it: the head and the body, exactly as the bytes came.</summary>
public sealed record RawHttpRequest(byte[] Head, byte[] Body)
{
    /// <summary>The head as UTF-8 text (invalid bytes show as U+FFFD, so a test comparing text sees them).</summary>
    public string HeadText => Encoding.UTF8.GetString(Head);

    /// <summary>The value of the first header called <paramref name="name"/> (case-insensitive), decoded as UTF-8, or null.</summary>
    public string? Header(string name)
    {
        foreach (var line in HeadText.Split("\r\n").Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line.AsSpan(0, colon).Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return line[(colon + 1)..].Trim(' ', '\t');
            }
        }

        return null;
    }
}

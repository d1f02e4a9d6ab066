using System.Security.Cryptography;
using System.Text;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Auth;

/// <summary>
/// The configured Relay keys, found by the SHA-256 of a presented key: configuration holds only hashes, so a
/// leaked configuration file leaks no key (the keys are random and long, so a fast hash is enough).
/// </summary>
internal sealed class RelayKeyRing
{
    private readonly Dictionary<string, RelayKeyOptions> _byHash;

    public RelayKeyRing(IEnumerable<RelayKeyOptions> keys)
    {
        _byHash = new(StringComparer.OrdinalIgnoreCase);
        foreach (var key in keys)
        {
            _byHash[key.Sha256] = key;
        }
    }

    /// <summary>The key whose hash matches <paramref name="presented"/>, or null.</summary>
    public RelayKeyOptions? Find(string presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        return _byHash.GetValueOrDefault(Convert.ToHexStringLower(hash));
    }

    /// <summary>The hex SHA-256 to configure for <paramref name="key"/>.</summary>
    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}

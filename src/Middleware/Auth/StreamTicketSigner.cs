using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.Auth;

/// <summary>
/// Signs and verifies ticket strings: <c>base64url(payload) "." base64url(HMAC-SHA256(payload))</c>, the payload
/// being the ticket id, the expiry and the route id. A ticket altered in any byte fails verification before the
/// store is asked, and its route and expiry can be trusted.
/// </summary>
internal sealed class StreamTicketSigner
{
    /// <summary>The shortest signing key accepted: the HMAC-SHA256 block's worth of security needs 32 bytes.</summary>
    public const int MinimumKeyBytes = 32;

    private const int IdBytes = 16;

    // 32 random bytes hold about 30 distinct values; fewer than 16 happens by chance with a probability far
    // below 2^-100, and is what a key of zeros, one repeated byte or a short repeated pattern looks like.
    private const int MinimumDistinctBytes = 16;

    private readonly byte[] _key;

    public StreamTicketSigner(IOptions<RelayOptions> options)
    {
        // Without a configured key, a random one: tickets then live and die with this process.
        _key = options.Value.Tickets.SigningKey is { Length: > 0 } configured
            ? Convert.FromBase64String(configured)
            : RandomNumberGenerator.GetBytes(32);
    }

    /// <summary>
    /// Whether a configured key is obviously not random: too few distinct byte values (all zeros, one byte or a short
    /// pattern repeated) or a counting sequence (0, 1, 2, ...). Such a key starts fine and lets anyone sign tickets.
    /// </summary>
    public static bool LacksEntropy(ReadOnlySpan<byte> key)
    {
        if (key.Length < MinimumKeyBytes)
        {
            return true;
        }

        Span<bool> seen = stackalloc bool[256];
        var distinct = 0;
        foreach (var b in key)
        {
            if (!seen[b])
            {
                seen[b] = true;
                distinct++;
            }
        }

        if (distinct < MinimumDistinctBytes)
        {
            return true;
        }

        var step = (byte)(key[1] - key[0]);
        for (var i = 2; i < key.Length; i++)
        {
            if ((byte)(key[i] - key[i - 1]) != step)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A new random ticket id.</summary>
    public static string NewId() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(IdBytes));

    public string Sign(string id, string? routeId, DateTimeOffset expiresAt)
    {
        var route = Encoding.UTF8.GetBytes(routeId ?? "");
        var payload = new byte[IdBytes + 8 + route.Length];
        if (!Base64Url.TryDecodeFromChars(id, payload.AsSpan(0, IdBytes), out var written) || written != IdBytes)
        {
            throw new ArgumentException("Not a ticket id.", nameof(id));
        }

        BinaryPrimitives.WriteInt64BigEndian(payload.AsSpan(IdBytes), expiresAt.ToUnixTimeMilliseconds());
        route.CopyTo(payload.AsSpan(IdBytes + 8));
        return Base64Url.EncodeToString(payload) + "." + Base64Url.EncodeToString(HMACSHA256.HashData(_key, payload));
    }

    /// <summary>Verifies the signature and reads the payload; false for anything malformed or altered.</summary>
    public bool TryVerify(string ticket, out string id, out string routeId, out DateTimeOffset expiresAt)
    {
        id = routeId = "";
        expiresAt = default;
        var dot = ticket.IndexOf('.');
        if (dot <= 0 || ticket.Length > 4096)
        {
            return false;
        }

        byte[] payload, signature;
        try
        {
            payload = Base64Url.DecodeFromChars(ticket.AsSpan(0, dot));
            signature = Base64Url.DecodeFromChars(ticket.AsSpan(dot + 1));
        }
        catch (FormatException)
        {
            return false;
        }

        if (payload.Length < IdBytes + 8
            || !CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(_key, payload), signature))
        {
            return false;
        }

        id = Base64Url.EncodeToString(payload.AsSpan(0, IdBytes));
        expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(payload.AsSpan(IdBytes)));
        routeId = Encoding.UTF8.GetString(payload.AsSpan(IdBytes + 8));
        return true;
    }
}

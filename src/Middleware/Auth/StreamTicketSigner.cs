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
    private const int IdBytes = 16;
    private readonly byte[] _key;

    public StreamTicketSigner(IOptions<RelayOptions> options)
    {
        // Without a configured key, a random one: tickets then live and die with this process.
        _key = options.Value.Tickets.SigningKey is { Length: > 0 } configured
            ? Convert.FromBase64String(configured)
            : RandomNumberGenerator.GetBytes(32);
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

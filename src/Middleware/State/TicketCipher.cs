using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Relay.Middleware.Auth;
using Relay.Middleware.Configuration;

namespace Relay.Middleware.State;

/// <summary>
/// A ticket as it rests in a shared store: its request and credential serialised, then sealed with AES-256-GCM under
/// <c>Relay:Tickets:EncryptionKey</c>, with the ticket id as associated data, so that a value copied under another
/// ticket's key, or altered, does not open. Layout: version (1) | nonce (12) | tag (16) | ciphertext.
/// </summary>
internal sealed class TicketCipher
{
    public const int KeyBytes = 32;
    private const byte Version = 1;
    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private const int HeaderBytes = 1 + NonceBytes + TagBytes;

    private readonly byte[] _key;

    public TicketCipher(IOptions<RelayOptions> options)
        : this(Convert.FromBase64String(options.Value.Tickets.EncryptionKey
            ?? throw new InvalidOperationException("Relay:Tickets:EncryptionKey is required with Relay:State:Redis.")))
    {
    }

    internal TicketCipher(byte[] key)
    {
        if (key.Length != KeyBytes)
        {
            throw new ArgumentException($"The ticket encryption key must be {KeyBytes} bytes.", nameof(key));
        }

        _key = key;
    }

    public byte[] Seal(StreamTicket ticket)
    {
        var plain = new ArrayBufferWriter<byte>(256 + ticket.Body.Length * 4 / 3);
        Write(plain, ticket);
        var sealedValue = new byte[HeaderBytes + plain.WrittenCount];
        sealedValue[0] = Version;
        var nonce = sealedValue.AsSpan(1, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_key, TagBytes);
        aes.Encrypt(nonce, plain.WrittenSpan, sealedValue.AsSpan(HeaderBytes), sealedValue.AsSpan(1 + NonceBytes, TagBytes), AssociatedData(ticket.Id));
        plain.Clear(); // Zeroes the plain text (credential included), unlike ResetWrittenCount.
        return sealedValue;
    }

    /// <summary>The ticket sealed under <paramref name="id"/>, or null when the value does not open (another key, altered, another id).</summary>
    public StreamTicket? Open(string id, ReadOnlySpan<byte> sealedValue)
    {
        if (sealedValue.Length < HeaderBytes || sealedValue[0] != Version)
        {
            return null;
        }

        var plain = new byte[sealedValue.Length - HeaderBytes];
        try
        {
            using var aes = new AesGcm(_key, TagBytes);
            aes.Decrypt(sealedValue.Slice(1, NonceBytes), sealedValue[HeaderBytes..], sealedValue.Slice(1 + NonceBytes, TagBytes), plain, AssociatedData(id));
            return Read(id, plain);
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private static byte[] AssociatedData(string id) => System.Text.Encoding.UTF8.GetBytes(id);

    private static void Write(IBufferWriter<byte> output, StreamTicket ticket)
    {
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("route", ticket.RouteId);
        json.WriteString("path", ticket.Path);
        json.WriteBase64String("body", ticket.Body.Span);
        json.WriteNumber("expires", ticket.ExpiresAt.ToUnixTimeMilliseconds());
        json.WriteStartArray("headers");
        foreach (var (name, value) in ticket.Headers)
        {
            json.WriteStartArray();
            json.WriteStringValue(name);
            json.WriteStringValue(value);
            json.WriteEndArray();
        }

        json.WriteEndArray();
        if (ticket.Credential is { } credential)
        {
            json.WriteStartObject("credential");
            json.WriteString("token", credential.Token);
            json.WriteString("authorization", credential.AuthorizationValue);
            json.WriteNumber("source", (int)credential.Source);
            json.WriteEndObject();
        }

        json.WriteEndObject();
    }

    private static StreamTicket Read(string id, byte[] plain)
    {
        using var document = JsonDocument.Parse(plain);
        var root = document.RootElement;
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var header in root.GetProperty("headers").EnumerateArray())
        {
            headers.Add(KeyValuePair.Create(header[0].GetString()!, header[1].GetString()!));
        }

        PresentedCredential? credential = null;
        if (root.TryGetProperty("credential", out var c))
        {
            credential = new PresentedCredential(c.GetProperty("token").GetString()!, c.GetProperty("authorization").GetString()!,
                (CredentialSource)c.GetProperty("source").GetInt32());
        }

        return new StreamTicket(id, root.GetProperty("route").GetString(), root.GetProperty("path").GetString()!, root.GetProperty("body").GetBytesFromBase64(),
            headers, credential, DateTimeOffset.FromUnixTimeMilliseconds(root.GetProperty("expires").GetInt64()));
    }
}

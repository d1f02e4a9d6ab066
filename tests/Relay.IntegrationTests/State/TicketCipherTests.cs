using System.Security.Cryptography;
using Relay.Middleware.Auth;
using Relay.Middleware.State;

namespace Relay.IntegrationTests.State;

/// <summary>A ticket at rest in Redis is sealed (AES-256-GCM), bound to its id, and opens only intact.</summary>
public sealed class TicketCipherTests
{
    private static readonly StreamTicket Ticket = new("ticket-id-1", "default", "/v1/chat/completions", "{\"model\":\"m\"}"u8.ToArray(),
        [KeyValuePair.Create("x-mock-seed", "4")], new PresentedCredential("sk-secret", "Bearer sk-secret", CredentialSource.AuthorizationHeader),
        DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000));

    [Fact]
    public void SealedTicket_OpensToTheSameTicket_UnderItsIdAndKey()
    {
        var cipher = new TicketCipher(RandomNumberGenerator.GetBytes(32));
        var opened = cipher.Open(Ticket.Id, cipher.Seal(Ticket))!;
        Assert.Equal(Ticket.Body.ToArray(), opened.Body.ToArray());
        Assert.Equal(Ticket.Credential, opened.Credential);
        Assert.Equal(Ticket.Headers, opened.Headers);
        Assert.Equal((Ticket.RouteId, Ticket.Path, Ticket.ExpiresAt), (opened.RouteId, opened.Path, opened.ExpiresAt));
    }

    [Fact]
    public void SealedTicket_DoesNotOpen_UnderAnotherId_AnotherKey_OrAltered()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var sealedValue = new TicketCipher(key).Seal(Ticket);
        Assert.Null(new TicketCipher(key).Open("ticket-id-2", sealedValue)); // Copied under another ticket's key in Redis.
        Assert.Null(new TicketCipher(RandomNumberGenerator.GetBytes(32)).Open(Ticket.Id, sealedValue));
        for (var i = 1; i < sealedValue.Length; i += 7)
        {
            var altered = (byte[])sealedValue.Clone();
            altered[i] ^= 0x01;
            Assert.Null(new TicketCipher(key).Open(Ticket.Id, altered));
        }

        Assert.True(sealedValue.AsSpan().IndexOf("sk-secret"u8) < 0, "the credential is in clear");
    }
}

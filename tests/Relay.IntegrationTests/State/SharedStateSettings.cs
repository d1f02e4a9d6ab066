using System.Security.Cryptography;

namespace Relay.IntegrationTests.State;

/// <summary>Settings of instances that share one Redis: one signing key and one encryption key for all of them.</summary>
internal static class SharedStateSettings
{
    public static readonly string SigningKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    public static readonly string EncryptionKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Relay-keys mode (<see cref="AuthTests.RelayKeySettings"/>), with the shared keys and, when given, Redis.</summary>
    public static Dictionary<string, string?> For(string? redis)
    {
        var settings = AuthTests.RelayKeySettings();
        settings["Relay:Tickets:SigningKey"] = SigningKey;
        settings["Relay:Tickets:EncryptionKey"] = EncryptionKey;
        if (redis is not null)
        {
            settings["Relay:State:Redis"] = redis;
        }

        return settings;
    }
}

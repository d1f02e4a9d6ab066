using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// A private CA, as a corporate TLS-inspecting proxy has, generated per test: its root as a PEM file (the bundle a
/// host is given) and server certificates it signs for chosen names.
/// </summary>
public sealed class PrivateCertificateAuthority : IDisposable
{
    private readonly RSA _key = RSA.Create(2048);

    public PrivateCertificateAuthority(string directory)
    {
        var request = new CertificateRequest("CN=Relay Test Corporate Root CA, O=Relay Tests", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        Root = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-10), DateTimeOffset.UtcNow.AddDays(2));
        BundlePath = Path.Combine(directory, "corporate-ca.pem");
        File.WriteAllText(BundlePath, Root.ExportCertificatePem());
    }

    public X509Certificate2 Root { get; }

    /// <summary>The root as a PEM file.</summary>
    public string BundlePath { get; }

    /// <summary>A server certificate (with its key) for <paramref name="ipAddress"/> and/or <paramref name="dnsName"/>, signed by the root.</summary>
    public X509Certificate2 IssueServerCertificate(IPAddress? ipAddress, string? dnsName = null)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={dnsName ?? ipAddress!.ToString()}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        if (ipAddress is not null)
        {
            san.AddIpAddress(ipAddress);
        }

        if (dnsName is not null)
        {
            san.AddDnsName(dnsName);
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Root, true, false));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var signed = request.Create(Root, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        return signed.CopyWithPrivateKey(key);
    }

    /// <summary>A client that trusts only this CA's root (full validation, host names checked).</summary>
    public HttpClient TrustingClient()
    {
        var handler = new SocketsHttpHandler { UseProxy = false };
        handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            CustomTrustStore = { X509CertificateLoader.LoadCertificate(Root.RawData) },
            RevocationMode = X509RevocationMode.NoCheck,
        };
        return new HttpClient(handler);
    }

    public void Dispose()
    {
        Root.Dispose();
        _key.Dispose();
    }
}

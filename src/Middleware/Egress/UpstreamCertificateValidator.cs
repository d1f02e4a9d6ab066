using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Relay.Middleware.Egress;

/// <summary>
/// Validates an upstream's TLS certificate as the system does, and, where a CA bundle is configured, also accepts a
/// chain that ends at one of its roots: the way a corporate TLS-inspecting proxy's private CA is trusted without
/// switching validation off. The host name is always checked (a name mismatch fails whatever the chain), and every
/// refusal is logged with what was wrong and the certificate's subject and issuer (no secrets: certificates are
/// public), since HttpClient's own exception says only that the callback refused it.
/// </summary>
internal sealed partial class UpstreamCertificateValidator
{
    private readonly string _clusterId;
    private readonly X509Certificate2Collection? _bundle;
    private readonly ILogger _logger;

    public UpstreamCertificateValidator(string clusterId, X509Certificate2Collection? bundle, ILogger logger)
    {
        _clusterId = clusterId;
        _bundle = bundle;
        _logger = logger;
    }

    /// <summary>The certificates of a PEM bundle; a missing, unreadable or empty bundle fails (at start-up).</summary>
    public static X509Certificate2Collection LoadBundle(string path)
    {
        var bundle = new X509Certificate2Collection();
        try
        {
            bundle.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            throw new InvalidOperationException($"The CA bundle '{path}' could not be read: {ex.Message}", ex);
        }

        return bundle.Count > 0 ? bundle : throw new InvalidOperationException($"The CA bundle '{path}' holds no PEM certificate.");
    }

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        var host = (sender as SslStream)?.TargetHostName ?? "";
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
        {
            // No certificate, or one for another name: no bundle makes that right.
            Log.Refused(_logger, _clusterId, host, errors, "", certificate?.Subject ?? "", certificate?.Issuer ?? "");
            return false;
        }

        var status = Describe(chain);
        if (_bundle is not null && chain is not null)
        {
            if (BuildsToBundle(certificate, chain, out var bundleStatus))
            {
                return true;
            }

            status = bundleStatus;
        }

        Log.Refused(_logger, _clusterId, host, errors, status, certificate.Subject, certificate.Issuer);
        return false;
    }

    private bool BuildsToBundle(X509Certificate certificate, X509Chain systemChain, out string status)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_bundle!);
        // The intermediates the upstream sent, as the system's chain had them; revocation as SslStream checks it by default.
        chain.ChainPolicy.ExtraStore.AddRange(systemChain.ChainPolicy.ExtraStore);
        foreach (var element in systemChain.ChainElements)
        {
            chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        }

        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var built = chain.Build(leaf);
        status = built ? "" : Describe(chain) + " (also against the CA bundle)";
        return built;
    }

    private static string Describe(X509Chain? chain)
        => chain is null ? "" : string.Join(", ", chain.ChainStatus.Select(static s => s.Status).Distinct());

    private static partial class Log
    {
        [LoggerMessage(1703, LogLevel.Warning,
            "The TLS certificate of the upstream {Host} (cluster '{ClusterId}') is not trusted: {Errors} {ChainStatus}; subject '{Subject}', issuer '{Issuer}'. "
            + "A private CA (TLS inspection) is trusted through the system's CA bundle (SSL_CERT_FILE) or Relay:Upstream:CaBundlePath.",
            EventName = "UpstreamCertificateRefused")]
        public static partial void Refused(ILogger logger, string clusterId, string host, SslPolicyErrors errors, string chainStatus, string subject, string issuer);
    }
}

using System.Net;
using Microsoft.Extensions.Logging;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// An upstream whose certificate a private CA signed (a corporate TLS-inspecting proxy) is trusted
/// through a configured CA bundle (<c>Relay:Upstream:CaBundlePath</c>) or the system's bundle (OpenSSL's
/// <c>SSL_CERT_FILE</c>), never by switching validation off: without the CA it is refused, and so is a certificate
/// the CA signed for another name.
/// </summary>
public sealed class CorporateCaTests : IAsyncLifetime
{
    private const string ClientKey = "sk-corporate-ca-test-9f3b";

    private readonly string _directory = Directory.CreateTempSubdirectory("relay-ca-").FullName;
    private PrivateCertificateAuthority _ca = null!;

    public Task InitializeAsync()
    {
        _ca = new PrivateCertificateAuthority(_directory);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _ca.Dispose();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private Task<TlsMockUpstream> StartUpstreamAsync(string? dnsName = null)
        => TlsMockUpstream.StartAsync(_ca.IssueServerCertificate(dnsName is null ? IPAddress.Loopback : null, dnsName), _ca.TrustingClient(), warmUp: dnsName is null);

    [Fact]
    public async Task UpstreamSignedByAPrivateCA_WithTheConfiguredBundle_Streams()
    {
        await using var upstream = await StartUpstreamAsync();
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Upstream:CaBundlePath"] = _ca.BundlePath });

        await AssertStreamsAsync(relay.Url);
        Assert.Contains(relay.Logs.GetSnapshot(), r => r.Message.Contains($"CA bundle {_ca.BundlePath}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Control_UpstreamSignedByAPrivateCA_WithoutTheBundle_Gets502UpstreamUnreachable_AndTheLogSaysUntrusted()
    {
        await using var upstream = await StartUpstreamAsync();
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?> { ["Relay:Resilience:MaxAttempts"] = "1" });

        using var response = await SendAsync(relay.Url);
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", await EgressProxyTests.ErrorCodeAsync(response));

        var refused = Assert.Single(relay.Logs.GetSnapshot(), static r => r.Id.Name == "UpstreamCertificateRefused");
        Assert.Equal(LogLevel.Warning, refused.Level);
        Assert.Contains("is not trusted: RemoteCertificateChainErrors", refused.Message);
        Assert.Contains("issuer 'CN=Relay Test Corporate Root CA, O=Relay Tests'", refused.Message);
        AuthTests.AssertNotLogged(relay, ClientKey);
    }

    [Fact]
    public async Task CertificateForAnotherHostName_SignedByTheBundledCA_IsStillRefused()
    {
        await using var upstream = await StartUpstreamAsync(dnsName: "inference.corp.example");
        await using var relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Relay:Upstream:CaBundlePath"] = _ca.BundlePath,
            ["Relay:Resilience:MaxAttempts"] = "1",
        });

        using var response = await SendAsync(relay.Url);
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_unreachable", await EgressProxyTests.ErrorCodeAsync(response));
        var refused = Assert.Single(relay.Logs.GetSnapshot(), static r => r.Id.Name == "UpstreamCertificateRefused");
        Assert.Contains("RemoteCertificateNameMismatch", refused.Message);
    }

    [Fact]
    public async Task SystemCaBundle_SslCertFile_TrustsThePrivateCA()
    {
        // OpenSSL's SSL_CERT_FILE replaces the system's bundle for the process, as an image built for a corporate
        // network sets it (or adds the CA to /etc/ssl/certs with update-ca-certificates). No Relay setting is involved.
        await using var upstream = await StartUpstreamAsync();
        await using var relay = await RelayChildProcess.StartAsync(upstream.Url, new Dictionary<string, string> { ["SSL_CERT_FILE"] = _ca.BundlePath });
        await AssertStreamsAsync(relay.Url);
    }

    [Fact]
    public async Task ACaBundleWithoutCertificates_FailsAtStartUp()
    {
        var path = Path.Combine(_directory, "empty.pem");
        await File.WriteAllTextAsync(path, "not a certificate\n");
        var error = await Assert.ThrowsAnyAsync<Exception>(() => InProcessRelay.StartAsync("https://127.0.0.1:1", new Dictionary<string, string?> { ["Relay:Upstream:CaBundlePath"] = path }));
        Assert.Contains("holds no PEM certificate", error.ToString());
    }

    private static async Task<HttpResponseMessage> SendAsync(string relayUrl)
    {
        using var client = new HttpClient();
        using var request = SseRead.ChatRequest(relayUrl, headers: new Dictionary<string, string>
        {
            ["x-mock-ttft-ms"] = "0",
            ["x-mock-tokens-per-second"] = "200",
            ["x-mock-max-tokens"] = "10",
            ["Authorization"] = "Bearer " + ClientKey,
        });
        return await client.SendAsync(request);
    }

    private static async Task AssertStreamsAsync(string relayUrl)
    {
        using var response = await SendAsync(relayUrl);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"content\":", body);
        Assert.EndsWith("data: [DONE]\n\n", body);
    }
}

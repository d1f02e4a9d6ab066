using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Relay.IntegrationTests.Infrastructure;

namespace Relay.IntegrationTests;

/// <summary>
/// Relay terminates TLS with the standard Kestrel endpoint configuration (certificate and key from
/// PEM files), HTTP/2 negotiated by ALPN. The certificate is generated per test; clients trust it as their CA (never by
/// switching validation off).
/// </summary>
public sealed class TlsTests(MockUpstreamFixture upstream) : IAsyncLifetime, IClassFixture<MockUpstreamFixture>
{
    private readonly string _directory = Directory.CreateTempSubdirectory("relay-tls-").FullName;
    private InProcessRelay _relay = null!;
    private X509Certificate2 _certificate = null!;
    private string _httpsUrl = "";

    public async Task InitializeAsync()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        _certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        await File.WriteAllTextAsync(CertPath, _certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(KeyPath, key.ExportPkcs8PrivateKeyPem());

        var port = FreePort.Next();
        _httpsUrl = $"https://127.0.0.1:{port}";
        _relay = await InProcessRelay.StartAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Https:Url"] = _httpsUrl,
            ["Kestrel:Endpoints:Https:Protocols"] = "Http1AndHttp2",
            ["Kestrel:Endpoints:Https:Certificate:Path"] = CertPath,
            ["Kestrel:Endpoints:Https:Certificate:KeyPath"] = KeyPath,
        });
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        _certificate.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private string CertPath => Path.Combine(_directory, "relay.pem");

    private string KeyPath => Path.Combine(_directory, "relay.key");

    [Fact]
    public async Task StreamsOverTls_WithHttp2NegotiatedByAlpn()
    {
        using var client = TrustingClient();
        using var request = SseRead.ChatRequest(_httpsUrl, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-max-tokens"] = "10" });
        request.Version = HttpVersion.Version20;
        request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var events = await SseRead.ReadAllAsync(response);
        Assert.Contains(events, e => e.Content.Length > 0);
        Assert.True(events[^1].IsDone);
    }

    [Fact]
    public async Task ClientCancelsAnHttp2StreamOverTls_TheUpstreamIsAborted()
    {
        using var client = TrustingClient();
        using var request = SseRead.ChatRequest(_httpsUrl, headers: new Dictionary<string, string> { ["x-mock-ttft-ms"] = "0", ["x-mock-tokens-per-second"] = "20", ["x-mock-max-tokens"] = "500" });
        request.Version = HttpVersion.Version20;
        request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var cancel = new CancellationTokenSource();
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        var requestId = response.Headers.GetValues("x-mock-request-id").Single();
        await SseRead.ReadAllAsync(response, cancel.Token, stopAfter: e => e.Content.Length > 0);
        // Disposing the response of an HTTP/2 stream in progress sends RST_STREAM.
        response.Dispose();

        var record = await upstream.WaitForRecordAsync(requestId, MockUpstreamFixture.IsAborted);
        Assert.True(MockUpstreamFixture.IsAborted(record));
    }

    [SkippableFact]
    public async Task Curl_Http2_OverTls_StreamsWithTheCertificateAsItsCA()
    {
        Skip.If(!File.Exists("/usr/bin/curl"), "curl is not installed");
        var start = new ProcessStartInfo("curl", [
            "-sS", "-N", "--http2", "--cacert", CertPath, "-o", "-", "-w", "\nHTTP_VERSION=%{http_version}\n",
            "-H", "content-type: application/json", "-H", "x-mock-ttft-ms: 0", "-H", "x-mock-max-tokens: 10",
            "-d", "{\"model\":\"mock\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}",
            _httpsUrl + "/v1/chat/completions",
        ])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var curl = Process.Start(start)!;
        var output = await curl.StandardOutput.ReadToEndAsync();
        var error = await curl.StandardError.ReadToEndAsync();
        await curl.WaitForExitAsync();

        Assert.True(curl.ExitCode == 0, error);
        Assert.Contains("data: [DONE]", output);
        Assert.Contains("HTTP_VERSION=2", output);
    }

    [Fact]
    public async Task OpenAIDotNetSdk_StreamsOverTls()
    {
        var client = new OpenAI.Chat.ChatClient("mock", new System.ClientModel.ApiKeyCredential("sk-not-used"), new OpenAI.OpenAIClientOptions
        {
            Endpoint = new Uri(_httpsUrl + "/v1"),
            Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(TrustingClient()),
        });
        var text = new System.Text.StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new OpenAI.Chat.UserChatMessage("Hello")], new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 20 }))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }
        }

        Assert.True(text.Length > 5, text.ToString());
    }

    [Fact]
    public async Task WebSocketBridge_OverTls()
    {
        var socket = new System.Net.WebSockets.ClientWebSocket();
        socket.Options.SetRequestHeader("x-mock-ttft-ms", "0");
        socket.Options.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            // Full validation against the generated certificate as the only root; a wrong host name still fails.
            if (certificate is null || (errors & System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            {
                return false;
            }

            using var chain = new X509Chain { ChainPolicy = TrustPolicy() };
            return chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
        };
        await using var client = await BridgeClient.ConnectAsync(socket, new Uri("wss" + _httpsUrl["https".Length..] + "/v1/chat/ws"));
        await client.ReceiveAsync();
        await client.SendAsync(BridgeClient.Create());
        var messages = await client.ReceiveUntilAsync("response.done");
        Assert.Contains(messages, m => m.Content.Length > 0);
        Assert.Equal("completed", messages[^1].Json.GetProperty("response").GetProperty("status").GetString());
    }

    private X509ChainPolicy TrustPolicy() => new()
    {
        TrustMode = X509ChainTrustMode.CustomRootTrust,
        CustomTrustStore = { X509CertificateLoader.LoadCertificate(_certificate.RawData) },
        RevocationMode = X509RevocationMode.NoCheck,
    };

    /// <summary>A client that trusts the generated certificate as its only root (custom trust store), with full validation.</summary>
    private HttpClient TrustingClient()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.CertificateChainPolicy = TrustPolicy();
        return new HttpClient(handler);
    }
}

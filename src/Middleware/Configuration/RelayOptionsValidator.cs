using Microsoft.Extensions.Options;
using Relay.Middleware.Auth;

namespace Relay.Middleware.Configuration;

/// <summary>Validates <see cref="RelayOptions"/> at start-up, so a bad setting fails loudly before traffic.</summary>
internal sealed class RelayOptionsValidator : IValidateOptions<RelayOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayOptions options)
    {
        var failures = new List<string>();
        if (options.Upstream.BaseUrl is { Length: > 0 } url
            && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add($"Relay:Upstream:BaseUrl must be an absolute http(s) URL.");
        }

        if (options.Cadence.MaxTokens < 1)
        {
            failures.Add("Relay:Cadence:MaxTokens must be at least 1.");
        }

        if (options.Cadence.IntervalMs < 0)
        {
            failures.Add("Relay:Cadence:IntervalMs must not be negative.");
        }

        if (options.Limits.MaxRequestBodyBytes < 1)
        {
            failures.Add("Relay:Limits:MaxRequestBodyBytes must be positive.");
        }

        if (options.Backpressure.MaxBufferedBytes < 1024)
        {
            failures.Add("Relay:Backpressure:MaxBufferedBytes must be at least 1024.");
        }

        var telemetry = options.Telemetry;
        if (telemetry.OtlpEndpoint is { Length: > 0 } otlp
            && (!Uri.TryCreate(otlp, UriKind.Absolute, out var otlpUri) || (otlpUri.Scheme != Uri.UriSchemeHttp && otlpUri.Scheme != Uri.UriSchemeHttps)))
        {
            failures.Add("Relay:Telemetry:OtlpEndpoint must be an absolute http(s) URL.");
        }

        if (telemetry.OtlpProtocol is not ("http/protobuf" or "grpc"))
        {
            failures.Add("Relay:Telemetry:OtlpProtocol must be \"http/protobuf\" or \"grpc\".");
        }

        if (telemetry.MetricExportIntervalMs < 100)
        {
            failures.Add("Relay:Telemetry:MetricExportIntervalMs must be at least 100.");
        }

        foreach (var key in options.RelayKeys)
        {
            if (key.Sha256.Length != 64 || !key.Sha256.All(Uri.IsHexDigit))
            {
                failures.Add($"Relay:RelayKeys: the key '{key.Name}' needs Sha256 = 64 hex digits (the SHA-256 of the key, never the key itself).");
            }
        }

        if (options.Tickets.LifetimeSeconds <= 0 || double.IsNaN(options.Tickets.LifetimeSeconds))
        {
            failures.Add("Relay:Tickets:LifetimeSeconds must be positive.");
        }

        if (options.Tickets.SigningKey is { Length: > 0 } signingKey)
        {
            var key = new byte[signingKey.Length];
            if (!Convert.TryFromBase64String(signingKey, key, out var keyBytes) || keyBytes < StreamTicketSigner.MinimumKeyBytes)
            {
                failures.Add("Relay:Tickets:SigningKey must be base64 of at least 32 bytes (openssl rand -base64 32).");
            }
            else if (StreamTicketSigner.LacksEntropy(key.AsSpan(0, keyBytes)))
            {
                // Never echo the key: only what is wrong with it.
                failures.Add("Relay:Tickets:SigningKey is not random (one byte repeated, a short pattern repeated, or a counting sequence): anyone could guess it and sign tickets. Generate one with openssl rand -base64 32.");
            }
        }

        // Tickets in Redis are shared by instances and rest outside the process.
        ValidateSharedState(options, failures);

        if (options.Cors is { PassUpstreamHeaders: true, AllowedOrigins.Length: > 0 })
        {
            failures.Add("Relay:Cors:PassUpstreamHeaders (the upstream owns CORS) cannot be combined with Relay:Cors:AllowedOrigins (Relay owns CORS).");
        }

        if (!options.Tickets.ChatCompletionsPath.StartsWith('/'))
        {
            failures.Add("Relay:Tickets:ChatCompletionsPath must start with '/'.");
        }

        if (options.Heartbeat.IntervalSeconds < 0 || double.IsNaN(options.Heartbeat.IntervalSeconds))
        {
            failures.Add("Relay:Heartbeat:IntervalSeconds must be zero (off) or positive.");
        }

        var ws = options.WebSocket;
        if (ws.MaxMessageBytes < 1024)
        {
            failures.Add("Relay:WebSocket:MaxMessageBytes must be at least 1024.");
        }

        if (ws.MaxSendQueueBytes < 1024)
        {
            failures.Add("Relay:WebSocket:MaxSendQueueBytes must be at least 1024.");
        }

        var t = options.Timeouts;
        foreach (var (value, key) in new[]
        {
            (t.FirstTokenSeconds, "FirstTokenSeconds"), (t.IdleSeconds, "IdleSeconds"), (t.MaxDurationSeconds, "MaxDurationSeconds"),
            (t.MaxRequestTimeoutSeconds, "MaxRequestTimeoutSeconds"), (t.WriteStallSeconds, "WriteStallSeconds"),
            (options.Shutdown.DrainSeconds, "Shutdown:DrainSeconds"), (ws.KeepAliveIntervalSeconds, "WebSocket:KeepAliveIntervalSeconds"),
            (ws.KeepAliveTimeoutSeconds, "WebSocket:KeepAliveTimeoutSeconds"), (ws.CloseTimeoutSeconds, "WebSocket:CloseTimeoutSeconds"),
        })
        {
            if (value < 0 || double.IsNaN(value))
            {
                failures.Add($"Relay:{(key.Contains(':') ? "" : "Timeouts:")}{key} must be zero (off) or positive.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateSharedState(RelayOptions options, List<string> failures)
    {
        var tickets = options.Tickets;
        if (tickets.EncryptionKey is { Length: > 0 } encryptionKey)
        {
            var key = new byte[encryptionKey.Length];
            if (!Convert.TryFromBase64String(encryptionKey, key, out var keyBytes) || keyBytes != State.TicketCipher.KeyBytes)
            {
                failures.Add("Relay:Tickets:EncryptionKey must be base64 of exactly 32 bytes (openssl rand -base64 32).");
            }
            else if (StreamTicketSigner.LacksEntropy(key.AsSpan(0, keyBytes)))
            {
                failures.Add("Relay:Tickets:EncryptionKey is not random (one byte repeated, a short pattern repeated, or a counting sequence). Generate one with openssl rand -base64 32.");
            }
        }

        var resume = options.Resume;
        failures.AddRange(Resume.ResumeOptionsRules.Problems(resume, "Relay:Resume:"));

        if (string.IsNullOrWhiteSpace(options.State.Redis))
        {
            if (resume.Enabled)
            {
                failures.Add("Relay:Resume:Enabled needs Relay:State:Redis: resumable streams are kept in Redis, where any instance can resume them.");
            }

            return;
        }

        if (string.IsNullOrEmpty(tickets.EncryptionKey))
        {
            failures.Add("Relay:State:Redis is set but Relay:Tickets:EncryptionKey is not: tickets in Redis hold requests and credentials, sealed with that key (base64 of 32 random bytes, the same on every instance: openssl rand -base64 32).");
        }

        if (string.IsNullOrEmpty(tickets.SigningKey))
        {
            failures.Add("Relay:State:Redis is set but Relay:Tickets:SigningKey is not: instances sharing tickets need one signing key (openssl rand -base64 32).");
        }
    }
}

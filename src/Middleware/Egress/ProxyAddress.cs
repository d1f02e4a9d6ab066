using System.Net;

namespace Relay.Middleware.Egress;

/// <summary>Proxy addresses as Relay uses and shows them: credentials taken out of the URI, and never logged.</summary>
internal static class ProxyAddress
{
    private const string Redacted = "***";

    /// <summary>The environment variables <see cref="HttpClient.DefaultProxy"/> reads on Unix, in the order it prefers them.</summary>
    private static readonly string[] EnvironmentVariables =
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"];

    /// <summary>The address with any <c>user:password@</c> replaced by <c>***@</c>.</summary>
    public static string Redact(string address)
    {
        var at = address.LastIndexOf('@');
        if (at < 0)
        {
            return address;
        }

        var scheme = address.IndexOf("://", StringComparison.Ordinal);
        var start = scheme >= 0 && scheme < at ? scheme + 3 : 0;
        return string.Concat(address.AsSpan(0, start), Redacted, address.AsSpan(at));
    }

    public static Uri WithoutUserInfo(Uri address) => new UriBuilder(address) { UserName = "", Password = "" }.Uri;

    /// <summary>The credentials of <c>user:password@</c>, percent-decoded (as curl and HttpClient read HTTPS_PROXY).</summary>
    public static NetworkCredential Credentials(Uri address)
    {
        var info = address.UserInfo;
        var colon = info.IndexOf(':');
        return colon < 0
            ? new NetworkCredential(Uri.UnescapeDataString(info), "")
            : new NetworkCredential(Uri.UnescapeDataString(info[..colon]), Uri.UnescapeDataString(info[(colon + 1)..]));
    }

    /// <summary>The proxy environment variables that are set, redacted, for the log; null when none is.</summary>
    public static string? FromEnvironment()
    {
        var set = EnvironmentVariables
            .Select(static name => (name, value: Environment.GetEnvironmentVariable(name)))
            .Where(static v => !string.IsNullOrEmpty(v.value))
            .Select(static v => $"{v.name}={Redact(v.value!)}")
            .ToList();
        return set.Count == 0 ? null : string.Join(", ", set);
    }
}

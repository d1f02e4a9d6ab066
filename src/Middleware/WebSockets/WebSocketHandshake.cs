using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;
using Relay.Middleware.Errors;

namespace Relay.Middleware.WebSockets;

/// <summary>
/// The server side of the WebSocket opening handshake, over HTTP/1.1 (RFC 6455 section 4.2) and HTTP/2 extended
/// CONNECT (RFC 8441). Relay accepts the socket itself rather than through ASP.NET Core's WebSocket middleware
/// because it needs the raw upgraded stream: <see cref="WebSocketFrameGuard"/> reads the client's frames on it, to
/// enforce what the framework's WebSocket does not (message size limit, client masking, UTF-8 of close reasons).
/// </summary>
internal static class WebSocketHandshake
{
    /// <summary>The subprotocol name of Relay's bridge protocol (docs/websocket-protocol.md).</summary>
    public const string ProtocolName = "relay.v1";

    // RFC 6455 section 1.3: the GUID concatenated to the client's key.
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>Whether the request asks for a WebSocket (an HTTP/1.1 upgrade or an HTTP/2 extended CONNECT).</summary>
    public static bool IsWebSocketRequest(HttpContext context)
    {
        if (context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect)
        {
            return string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase);
        }

        return context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true }
            && HttpMethods.IsGet(context.Request.Method)
            && HasToken(context.Request.Headers.Upgrade, "websocket");
    }

    /// <summary>
    /// Completes the handshake and returns the upgraded stream and the selected subprotocol, or writes an
    /// OpenAI-style error (400, or 426 for an unsupported version) and returns a null stream.
    /// </summary>
    public static async Task<(Stream? Stream, string? Protocol)> AcceptAsync(HttpContext context)
    {
        var request = context.Request;
        var headers = context.Response.Headers;

        // "The |Sec-WebSocket-Version| header field ... MUST be 13"; otherwise 426 with the versions supported.
        if (!string.Equals(request.Headers.SecWebSocketVersion, "13", StringComparison.Ordinal))
        {
            await WriteUpgradeRequiredAsync(context, "Only WebSocket version 13 is supported.", "unsupported_websocket_version");
            return (null, null);
        }

        var protocol = HasToken(request.Headers.SecWebSocketProtocol, ProtocolName) ? ProtocolName : null;
        if (context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect)
        {
            if (protocol is not null)
            {
                headers.SecWebSocketProtocol = protocol;
            }

            return (await connect.AcceptAsync(), protocol);
        }

        // "a |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded, is 16 bytes in length".
        var key = request.Headers.SecWebSocketKey.ToString();
        Span<byte> decoded = stackalloc byte[18];
        if (!Convert.TryFromBase64String(key, decoded, out var length) || length != 16
            || !HasToken(request.Headers.Connection, "upgrade"))
        {
            await OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status400BadRequest,
                "The WebSocket handshake is malformed (RFC 6455 section 4.2.1).", RelayErrorTypes.InvalidRequest, "invalid_websocket_handshake");
            return (null, null);
        }

        headers.Connection = "Upgrade";
        headers.Upgrade = "websocket";
        headers.SecWebSocketAccept = AcceptValue(key);
        if (protocol is not null)
        {
            headers.SecWebSocketProtocol = protocol;
        }

        var upgrade = context.Features.GetRequiredFeature<IHttpUpgradeFeature>();
        return (await upgrade.UpgradeAsync(), protocol);
    }

    /// <summary>
    /// A 426 with an OpenAI-style error that names the protocol to upgrade to. RFC 9110 section 15.5.22: "The server
    /// MUST send an Upgrade header field in a 426 response to indicate the required protocol(s)", and section 7.8: "A
    /// sender of Upgrade MUST also send an "Upgrade" connection option in the Connection header field". HTTP/2 and
    /// HTTP/3 have no Upgrade (RFC 9113 section 8.6) and forbid connection-specific fields: there the 426 carries only
    /// <c>Sec-WebSocket-Version</c>, which RFC 6455 section 4.4 asks for (the server sends "an appropriate HTTP error
    /// code (such as 426 Upgrade Required) and a |Sec-WebSocket-Version| header field indicating the version(s) the
    /// server is capable of understanding").
    /// </summary>
    public static Task WriteUpgradeRequiredAsync(HttpContext context, string message, string code)
    {
        // The error writer clears the response's headers first: add ours as the headers go out.
        context.Response.OnStarting(static state =>
        {
            var http = (HttpContext)state;
            var headers = http.Response.Headers;
            headers.SecWebSocketVersion = "13";
            if (!HttpProtocol.IsHttp2(http.Request.Protocol) && !HttpProtocol.IsHttp3(http.Request.Protocol))
            {
                headers.Upgrade = "websocket";
                headers.Connection = "Upgrade";
            }

            return Task.CompletedTask;
        }, context);
        return OpenAIError.TryWriteResponseAsync(context, StatusCodes.Status426UpgradeRequired, message, RelayErrorTypes.InvalidRequest, code);
    }

    /// <summary>RFC 6455 section 4.2.2: base64(SHA-1(key + GUID)).</summary>
    internal static string AcceptValue(string key)
        => Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));

    private static bool HasToken(Microsoft.Extensions.Primitives.StringValues values, string token)
    {
        foreach (var value in values)
        {
            foreach (var part in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (string.Equals(part, token, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }

        return false;
    }
}

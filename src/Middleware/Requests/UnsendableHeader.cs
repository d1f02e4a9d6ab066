using Microsoft.AspNetCore.Http;

namespace Relay.Middleware.Requests;

/// <summary>
/// Finds a request header whose value cannot go upstream as received. RFC 9110, section 5.5: "Field values containing
/// CR, LF, or NUL characters are invalid and dangerous, due to the varying ways that implementations might parse and
/// interpret those characters; a recipient of CR, LF, or NUL within a field value MUST either reject the message or
/// replace each of those characters with SP before further processing or forwarding of that message." Kestrel
/// rejects such bytes on the wire; a value can still get them from a decoding step (a percent-encoded query token
/// becomes the <c>Authorization</c> header), and HttpClient would drop or refuse it. Relay rejects the request
/// with a 400 that names the header, instead of a 502 that blames an upstream it never called.
/// </summary>
internal static class UnsendableHeader
{
    /// <summary>The name of the first header whose value holds CR, LF or NUL, or null when every header can be sent.</summary>
    public static string? Find(IHeaderDictionary headers)
    {
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                if (value is not null && value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
                {
                    return name;
                }
            }
        }

        return null;
    }

    /// <summary>The client's error message (the header's name, never its value, which may be a credential).</summary>
    public static string Message(string name)
        => $"The request header {name} cannot be forwarded: its value contains a line break or NUL character, which HTTP does not allow in a header.";
}

using System.Collections;
using System.Reflection;
using Relay.Middleware.Resilience;

namespace Relay.Middleware.Configuration;

/// <summary>
/// Every key Relay reads, so that a key it does not read fails at start-up (a typo that does nothing is worse than no
/// setting at all) with the nearest key it does read. The <c>Relay</c> section's keys are the settable properties of
/// <see cref="RelayOptions"/>; a route's metadata keys are those of the sections of <see cref="RouteSettings"/> (a
/// section becomes per route by becoming a property of <see cref="RouteSettings"/>), less <see cref="GlobalOnly"/>.
/// </summary>
internal static class RelayConfigurationKeys
{
    /// <summary>
    /// Keys of a per-route section that only the whole app sets (read outside any route). Register one per line.
    /// </summary>
    public static readonly string[] GlobalOnly =
    [
        "Auth:QueryTokenAlias", // the server strips query tokens before routing
    ];

    /// <summary>Destination metadata keys Relay reads (with the <c>Relay.</c> prefix). Register one per line.</summary>
    public static readonly string[] DestinationMetadata =
    [
        DestinationCredentialTransform.ApiKeyHeaderMetadata,
        DestinationCredentialTransform.ApiKeyConfigKeyMetadata,
    ];

    /// <summary>Cluster metadata keys Relay reads (with the <c>Relay.</c> prefix). Register one per line.</summary>
    public static readonly string[] ClusterMetadata =
    [
        Egress.RelayForwarderHttpClientFactory.CaBundleMetadataKey,
    ];

    /// <summary>The keys of the <c>Relay</c> section, <c>:</c>-separated; <c>*</c> stands for a list index.</summary>
    public static IReadOnlyList<string> Global { get; } = Paths(typeof(RelayOptions), "").ToArray();

    /// <summary>The keys a route's metadata may set (after <c>Relay.</c>, dots as <c>:</c>).</summary>
    public static IReadOnlyList<string> PerRoute { get; } = typeof(RouteSettings).GetProperties()
        .Where(static p => p.CanWrite && IsSection(p.PropertyType))
        .SelectMany(static p => Paths(p.PropertyType, p.Name + ":"))
        .Where(static k => !GlobalOnly.Contains(k, StringComparer.OrdinalIgnoreCase))
        .ToArray();

    /// <summary>Whether <paramref name="key"/> (<c>:</c>-separated, indexes as numbers) is one of <paramref name="keys"/>.</summary>
    public static bool IsKnown(string key, IReadOnlyList<string> keys) => keys.Any(k => Matches(k, key));

    /// <summary>Whether <paramref name="key"/> is a section or list above one of <paramref name="keys"/>.</summary>
    public static bool IsSectionOf(string key, IReadOnlyList<string> keys)
        => keys.Any(k => k.StartsWith(Shape(key) + ":", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The problem with one route metadata key named <c>Relay.</c> plus <paramref name="key"/> (dots as <c>:</c>),
    /// or null when a route may set it.
    /// </summary>
    public static string? RouteKeyProblem(string key)
    {
        if (IsKnown(key, PerRoute))
        {
            return null;
        }

        if (IsKnown(key, Global))
        {
            return $"'{key}' is a global setting: routes cannot override it; set Relay:{key} in the Relay section.";
        }

        return Sentence($"'{key}' is not a per-route setting{NearestHint(key, PerRoute, static k => "Relay." + k.Replace(':', '.'))}");
    }

    /// <summary>Ends <paramref name="text"/> with a full stop unless it ends with a question.</summary>
    public static string Sentence(string text) => text.EndsWith('?') ? text : text + ".";

    /// <summary>"; did you mean X?" for the known key nearest to <paramref name="key"/>, or "" when none is near.</summary>
    public static string NearestHint(string key, IReadOnlyList<string> keys, Func<string, string> display)
    {
        var shape = Shape(key);
        var best = keys.Select(k => (Key: k, Distance: Distance(shape, k)))
            .OrderBy(static c => c.Distance)
            .FirstOrDefault();
        return best.Key is not null && best.Distance <= Math.Max(3, best.Key.Length / 2)
            ? $"; did you mean {display(best.Key.Replace("*", "0", StringComparison.Ordinal))}?"
            : "";
    }

    private static bool Matches(string pattern, string key)
    {
        var p = pattern.Split(':');
        var k = key.Split(':');
        if (p.Length != k.Length)
        {
            // A list of values: "Cors:AllowedOrigins:*" also matches "Cors:AllowedOrigins" (an empty list).
            return p.Length == k.Length + 1 && p[^1] == "*" && Matches(string.Join(':', p[..^1]), key);
        }

        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] == "*" ? !int.TryParse(k[i], out _) : !string.Equals(p[i], k[i], StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The key with its list indexes as <c>*</c>, to compare with the patterns.</summary>
    private static string Shape(string key) => string.Join(':', key.Split(':').Select(static s => int.TryParse(s, out _) ? "*" : s));

    private static IEnumerable<string> Paths(Type type, string prefix)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (!property.CanWrite && !IsSection(property.PropertyType))
            {
                continue;
            }

            var name = prefix + property.Name;
            var element = ElementType(property.PropertyType);
            if (element is not null)
            {
                if (IsSection(element))
                {
                    foreach (var path in Paths(element, name + ":*:"))
                    {
                        yield return path;
                    }
                }
                else
                {
                    yield return name + ":*";
                }
            }
            else if (IsSection(property.PropertyType))
            {
                foreach (var path in Paths(property.PropertyType, name + ":"))
                {
                    yield return path;
                }
            }
            else
            {
                yield return name;
            }
        }
    }

    private static bool IsSection(Type type)
        => type.IsClass && type != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(type);

    private static Type? ElementType(Type type)
        => type == typeof(string) ? null
            : type.IsArray ? type.GetElementType()
            : type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type) ? type.GetGenericArguments()[0]
            : null;

    /// <summary>Levenshtein distance, case-insensitive: small keys, a few dozen candidates, once at start-up.</summary>
    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = char.ToUpperInvariant(a[i - 1]) == char.ToUpperInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}

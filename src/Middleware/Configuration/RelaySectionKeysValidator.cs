using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Relay.Middleware.Configuration;

/// <summary>
/// Fails start-up on a key of the <c>Relay</c> section that Relay does not read, with one line per key: the key, the
/// configuration source it came from, and the nearest key Relay reads. (The binder's own strictness would throw an
/// exception naming only the C# type, and the host would print its stack trace.)
/// </summary>
internal sealed class RelaySectionKeysValidator(IConfiguration section, IConfiguration? root) : IValidateOptions<RelayOptions>
{
    public ValidateOptionsResult Validate(string? name, RelayOptions options)
    {
        var path = (section as IConfigurationSection)?.Path ?? RelayOptions.SectionName;
        var failures = new List<string>();
        foreach (var (key, value) in section.AsEnumerable(makePathsRelative: true))
        {
            // Sections are not settings themselves, nor are empty objects or lists (JSON files give them as null or "").
            if (value is null || RelayConfigurationKeys.IsKnown(key, RelayConfigurationKeys.Global)
                || (value.Length == 0 && RelayConfigurationKeys.IsSectionOf(key, RelayConfigurationKeys.Global)))
            {
                continue;
            }

            var full = $"{path}:{key}";
            failures.Add($"{full} (from {Source(full)}) is not a Relay setting{RelayConfigurationKeys.NearestHint(key, RelayConfigurationKeys.Global, k => $"{path}:{k}")}");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>The configuration source the value comes from (the last one that has it wins).</summary>
    private string Source(string key)
        => (root as IConfigurationRoot)?.Providers.Reverse().FirstOrDefault(p => p.TryGet(key, out _)) switch
        {
            null => "configuration",
            Microsoft.Extensions.Configuration.EnvironmentVariables.EnvironmentVariablesConfigurationProvider => "environment variable " + key.Replace(":", "__", StringComparison.Ordinal),
            var provider => provider.ToString()!,
        };
}

using Microsoft.Extensions.Options;

namespace Relay;

/// <summary>
/// Turns the start-up failures that are configuration mistakes into one line each, for the operator: a Relay setting
/// that is unknown or invalid (options validation), a route whose <c>Relay.*</c> metadata is refused (YARP's
/// configuration load), a value the configuration binder cannot convert. Anything else is a bug and keeps its stack.
/// </summary>
internal static class StartupFailure
{
    private const string Prefix = "Relay configuration error: ";

    public static IReadOnlyList<string> Describe(Exception exception) => exception switch
    {
        OptionsValidationException validation => [.. validation.Failures.Select(static f => Prefix + f)],

        // YARP: "Unable to load or apply the proxy configuration." with every route's and cluster's errors inside.
        InvalidOperationException { InnerException: AggregateException errors } when exception.Message.Contains("proxy configuration", StringComparison.Ordinal)
            => [.. errors.InnerExceptions.Select(static e => Prefix + e.Message)],

        InvalidOperationException binding when binding.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal)
            => [Prefix + binding.Message + (binding.InnerException is { } inner ? " " + inner.Message : "")],

        _ => [],
    };
}

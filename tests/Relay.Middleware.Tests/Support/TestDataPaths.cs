using Relay.Tests.Shared;

namespace Relay.Middleware.Tests.Support;

/// <summary>The shared test data, as <see cref="TestDataLocator"/> finds it.</summary>
internal static class TestDataPaths
{
    public const string MissingReason = TestDataLocator.MissingReason;

    public static string? Root => TestDataLocator.Root;

    public static string Get(params string[] parts) => TestDataLocator.Path(parts);
}

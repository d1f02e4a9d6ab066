using Relay.Tests.Shared;

namespace Relay.IntegrationTests.Infrastructure;

/// <summary>The shared test data and the repository, as <see cref="TestDataLocator"/> finds them.</summary>
public static class TestData
{
    public const string MissingReason = TestDataLocator.MissingReason;

    public static string? Root => TestDataLocator.Root;

    public static string RepositoryRoot => TestDataLocator.RepositoryRoot;

    public static string Path(string relative) => TestDataLocator.Path(relative);
}

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

/// <summary>A fact that is skipped, with a clear reason, when the shared test data is absent.</summary>
public sealed class TestDataFactAttribute : FactAttribute
{
    public TestDataFactAttribute()
    {
        if (TestData.Root is null)
        {
            Skip = TestData.MissingReason;
        }
    }
}

/// <summary>A theory that is skipped, with a clear reason, when the shared test data is absent.</summary>
public sealed class TestDataTheoryAttribute : TheoryAttribute
{
    public TestDataTheoryAttribute()
    {
        if (TestData.Root is null)
        {
            Skip = TestData.MissingReason;
        }
    }
}

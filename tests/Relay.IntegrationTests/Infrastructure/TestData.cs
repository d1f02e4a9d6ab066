namespace Relay.IntegrationTests.Infrastructure;

/// <summary>
/// Finds <c>../shared/testdata</c> next to the repository (never copied into it). A user's clone has none:
/// tests that need it are skipped with this reason.
/// </summary>
public static class TestData
{
    public const string MissingReason = "../shared/testdata is not present next to the repository (it exists only on the project's own machines).";

    public static string? Root { get; } = Find();

    /// <summary>The repository's root (the folder of <c>Relay.sln</c>) above the test binaries.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string Path(string relative) => System.IO.Path.Combine(Root ?? throw new InvalidOperationException(MissingReason), relative);

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Relay.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Relay.sln above {AppContext.BaseDirectory}.");
    }

    private static string? Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "testdata");
            if (Directory.Exists(candidate) && File.Exists(System.IO.Path.Combine(candidate, "README.md")))
            {
                return candidate;
            }
        }

        return null;
    }
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

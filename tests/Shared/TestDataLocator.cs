namespace Relay.Tests.Shared;

/// <summary>
/// The test projects' one way to find the repository and the shared test data: <c>../shared/testdata</c> beside the
/// repository (never copied into it). A user's clone has none: tests that need it are skipped with
/// <see cref="MissingReason"/>.
/// </summary>
public static class TestDataLocator
{
    public const string MissingReason = "../shared/testdata is not present next to the repository (it exists only on the project's own machines).";

    /// <summary>The shared test data folder, or null when absent.</summary>
    public static string? Root { get; } = Find();

    /// <summary>The repository's root (the folder of <c>Relay.sln</c>) above the test binaries.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>A path inside the shared test data; throws with <see cref="MissingReason"/> when it is absent.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Root ?? throw new InvalidOperationException(MissingReason), .. parts]);

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

    // Walking up from the binaries finds shared/testdata beside the repository root (its parent holds it).
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

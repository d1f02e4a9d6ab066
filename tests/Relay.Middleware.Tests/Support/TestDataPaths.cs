namespace Relay.Middleware.Tests.Support;

/// <summary>
/// Finds the shared test data (<c>../shared/testdata</c> beside the repository root) at run time. The data is
/// never copied into the repository; tests that need it are skipped with a reason when it is absent.
/// </summary>
internal static class TestDataPaths
{
    public const string MissingReason = "shared test data not found: expected a 'shared/testdata' folder above the test binaries or beside the repository root (../shared/testdata)";

    private static readonly Lazy<string?> s_root = new(Locate);

    public static string? Root => s_root.Value;

    public static string Get(params string[] parts) =>
        Path.Combine([Root ?? throw new InvalidOperationException(MissingReason), .. parts]);

    private static string? Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var inside = Path.Combine(dir.FullName, "shared", "testdata");
            if (Directory.Exists(inside))
            {
                return inside;
            }

            // The repository root has a sibling ../shared/testdata.
            if (File.Exists(Path.Combine(dir.FullName, "Relay.sln")) && dir.Parent is { } parent)
            {
                var sibling = Path.Combine(parent.FullName, "shared", "testdata");
                return Directory.Exists(sibling) ? sibling : null;
            }
        }

        return null;
    }
}

namespace Relay.Middleware.Tests.Support;

/// <summary>A theory that is skipped, with the reason, when the shared test data is absent.</summary>
public sealed class TestDataTheoryAttribute : TheoryAttribute
{
    public TestDataTheoryAttribute()
    {
        if (TestDataPaths.Root is null)
        {
            Skip = TestDataPaths.MissingReason;
        }
    }
}

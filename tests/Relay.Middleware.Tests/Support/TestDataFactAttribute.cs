namespace Relay.Middleware.Tests.Support;

/// <summary>A fact that is skipped, with the reason, when the shared test data is absent (xunit 2 has no dynamic skip).</summary>
public sealed class TestDataFactAttribute : FactAttribute
{
    public TestDataFactAttribute()
    {
        if (TestDataPaths.Root is null)
        {
            Skip = TestDataPaths.MissingReason;
        }
    }
}

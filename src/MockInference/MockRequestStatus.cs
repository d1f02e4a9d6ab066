namespace MockInference;

/// <summary>Values of <see cref="MockRequestRecord.Status"/>.</summary>
public static class MockRequestStatus
{
    public const string InProgress = "in_progress";
    public const string Completed = "completed";
    public const string Error = "error";
    public const string Failed = "failed";
    public const string Reset = "reset";
    public const string Aborted = "aborted";
}

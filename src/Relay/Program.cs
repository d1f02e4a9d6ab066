try
{
    var app = await Relay.RelayApp.BuildAsync(args);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (Relay.StartupFailure.Describe(e) is { Count: > 0 } lines)
{
    // A configuration mistake is the operator's to fix: one line each, no stack trace.
    foreach (var line in lines)
    {
        Console.Error.WriteLine(line);
    }

    return 1;
}

using Microsoft.AspNetCore.Builder;

namespace MockInference;

/// <summary>The runnable mock: <c>dotnet run --project src/MockInference -- --urls http://0.0.0.0:8081</c>.</summary>
internal static class Program
{
    // An explicit, namespaced Program (not top-level statements) so it cannot clash with the Program of
    // the Relay host, which references this assembly.
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddMockInference();
        var app = builder.Build();
        app.MapMockInference();
        app.Run();
    }
}

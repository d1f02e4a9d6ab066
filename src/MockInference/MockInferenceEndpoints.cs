using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace MockInference;

/// <summary>
/// Adds the simulated OpenAI-compatible upstream to any ASP.NET Core app: the Relay host mounts it in-process
/// as its demo upstream, tests and the benchmark run it on its own port through <see cref="MockInferenceServer"/>.
/// </summary>
public static class MockInferenceEndpoints
{
    /// <summary>
    /// Registers the tokenizer, the request recorder and <see cref="TimeProvider.System"/> (unless a
    /// <see cref="TimeProvider"/> is already registered). Safe to call more than once.
    /// </summary>
    public static IServiceCollection AddMockInference(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<MockTokenizer>();
        services.TryAddSingleton<ReplyFactory>();
        services.TryAddSingleton<MockRequestRecorder>();
        services.TryAddSingleton<CompletionEndpoint>();
        services.TryAddSingleton<EmbeddingsEndpoint>();
        services.TryAddSingleton<MockFailTimes>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, TokenizerWarmup>());
        return services;
    }

    /// <summary>
    /// Maps <c>POST /v1/chat/completions</c>, <c>POST /v1/completions</c>, <c>POST /v1/embeddings</c>,
    /// <c>GET /v1/models</c>, <c>GET /mock/requests/{id}</c> and <c>GET /mock/clock</c>.
    /// Requires <see cref="AddMockInference"/>.
    /// </summary>
    public static IEndpointRouteBuilder MapMockInference(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);

        // RequestDelegate handlers: no parameter binding, nothing reflected per request.
        endpoints.MapPost("/v1/chat/completions", static context =>
            context.RequestServices.GetRequiredService<CompletionEndpoint>().HandleAsync(context, CompletionKind.Chat));
        endpoints.MapPost("/v1/completions", static context =>
            context.RequestServices.GetRequiredService<CompletionEndpoint>().HandleAsync(context, CompletionKind.Text));
        endpoints.MapPost("/v1/embeddings", static context =>
            context.RequestServices.GetRequiredService<EmbeddingsEndpoint>().HandleAsync(context));
        endpoints.MapGet("/v1/models", IntrospectionEndpoints.ListModelsAsync);
        endpoints.MapGet("/mock/requests/{id}", IntrospectionEndpoints.GetRecordAsync);
        endpoints.MapGet("/mock/clock", IntrospectionEndpoints.GetClockAsync);
        endpoints.MapGet("/mock/fail-keys/{key}", MockFailTimes.GetCountAsync);
        return endpoints;
    }
}

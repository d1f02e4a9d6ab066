var app = await Relay.RelayApp.BuildAsync(args);
await app.RunAsync();

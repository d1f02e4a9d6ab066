// One headless Chromium for the scripts of a test class (BrowserServer in tests/Relay.IntegrationTests): prints the
// playwright endpoint the scripts connect to (BROWSER_WS_ENDPOINT) as one line, and closes the browser when its
// standard input ends (the test process closed it, or exited).
import { chromium } from 'playwright-core';

const server = await chromium.launchServer({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
console.log(server.wsEndpoint());
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.close();
  process.exit(0);
});

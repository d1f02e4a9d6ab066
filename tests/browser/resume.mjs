// A page with EventSource on a resumable stream (started with a one-time ticket), in Debian's headless
// Chromium. Mid-stream the test kills the connection (it restarts the nginx in between), and EventSource reconnects by
// itself to the same URL with Last-Event-ID. Prints one JSON line at the end:
// the text the page shows, every event id it received, and how often the connection failed.
//   node resume.mjs <url> <bearer key> <seed> <max tokens> <tokens per second>
import { chromium } from 'playwright-core';

const [baseUrl, key, seed, maxTokens, tokensPerSecond] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  await page.goto(baseUrl + '/');
  await page.evaluate(async ({ key, seed, maxTokens, tokensPerSecond }) => {
    const state = window.__resume = { text: '', ids: [], errors: 0, done: false };
    const response = await fetch('/relay/v1/tickets', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json', Authorization: 'Bearer ' + key,
        'x-mock-seed': seed, 'x-mock-max-tokens': maxTokens, 'x-mock-tokens-per-second': tokensPerSecond, 'x-mock-ttft-ms': '0',
      },
      body: JSON.stringify({ model: 'mock', stream: true, stream_options: { resumable: true }, messages: [{ role: 'user', content: 'Hi' }] }),
    });
    const { url } = await response.json();
    const source = new EventSource(url);
    source.onmessage = event => {
      state.ids.push(event.lastEventId);
      if (event.data === '[DONE]') {
        state.done = true;
        source.close();
        return;
      }
      const chunk = JSON.parse(event.data);
      state.text += chunk.choices?.[0]?.delta?.content ?? '';
    };
    source.onerror = () => { state.errors++; };
  }, { key, seed, maxTokens, tokensPerSecond });

  await page.waitForFunction(() => window.__resume.done, null, { timeout: 60000 });
  console.log(JSON.stringify(await page.evaluate(() => window.__resume)));
} finally {
  await browser.close();
}

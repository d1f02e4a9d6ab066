// A resumable stream behind an edge that caps each response's duration, in Debian's headless Chromium; Relay ends each
// response before the cap (Resume:MaxResponseSeconds) and the page's client continues the stream. Prints one JSON line.
//   node caps.mjs eventsource <url> <bearer key> <seed> <max tokens> <tokens per second> <count key>
//     a page with EventSource on a ticket URL (it reconnects by itself, with Last-Event-ID):
//     { text, ids, errors, opens, requestIds }; a ticket's request replays no header ending in "key", so the mock's
//     count key stays behind and requestIds (the x-mock-request-id of every response) says how often it was called
//   node caps.mjs playground-fetch <url> <bearer key> <seed> <max tokens> <tokens per second> <count key>
//     the playground in fetch mode (it continues with GET /relay/v1/streams/{id}): { status, text, resumes, streamId }
//   node caps.mjs playground-stop-<fetch|eventsource> <url> ...: starts a reply in the playground and presses Stop: { status }
// The mock's knobs travel as request headers; <count key> lets the test ask the mock how often it was called.
import { chromium } from 'playwright-core';

const [mode, baseUrl, key, seed, maxTokens, tokensPerSecond, countKey] = process.argv.slice(2);
const knobs = {
  'x-mock-seed': seed, 'x-mock-max-tokens': maxTokens, 'x-mock-tokens-per-second': tokensPerSecond, 'x-mock-ttft-ms': '0',
  'x-mock-fail-key': countKey,
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  if (mode === 'eventsource') {
    const page = await browser.newPage();
    // The upstream request id of every response the page got (a resuming response has none: it never went upstream).
    const requestIds = [];
    page.on('response', r => { const id = r.headers()['x-mock-request-id']; if (id) requestIds.push(id); });
    await page.goto(baseUrl + '/');
    await page.evaluate(async ({ key, knobs }) => {
      const state = window.__caps = { text: '', ids: [], errors: 0, opens: 0, done: false };
      const response = await fetch('/relay/v1/tickets', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + key, ...knobs },
        body: JSON.stringify({ model: 'mock', stream: true, stream_options: { resumable: true }, messages: [{ role: 'user', content: 'Hi' }] }),
      });
      const { url } = await response.json();
      const source = new EventSource(url);
      source.onopen = () => { state.opens++; };
      source.onmessage = event => {
        state.ids.push(event.lastEventId);
        if (event.data === '[DONE]') {
          state.done = true;
          source.close();
          return;
        }
        state.text += JSON.parse(event.data).choices?.[0]?.delta?.content ?? '';
      };
      source.onerror = () => { state.errors++; };
    }, { key, knobs });
    await page.waitForFunction(() => window.__caps.done, null, { timeout: 90000 });
    console.log(JSON.stringify({ ...await page.evaluate(() => window.__caps), requestIds }));
  } else if (mode === 'playground-fetch') {
    const page = await browser.newPage({ extraHTTPHeaders: knobs });
    await page.goto(baseUrl + '/');
    await page.selectOption('#mode', 'fetch');
    await page.fill('#key', key);
    await page.click('#start');
    await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById('status').textContent), null, { timeout: 90000 });
    console.log(JSON.stringify(await page.evaluate(() => ({
      status: document.getElementById('status').textContent,
      text: document.getElementById('output').textContent,
      resumes: window.relayPlayground.resumes,
      streamId: window.relayPlayground.lastStreamId,
    }))));
  } else if (mode === 'playground-stop-fetch' || mode === 'playground-stop-eventsource') {
    // Stop mid-reply: a resumable stream outlives its client, so Stop must cancel it.
    const page = await browser.newPage({ extraHTTPHeaders: knobs });
    await page.goto(baseUrl + '/');
    await page.selectOption('#mode', mode.slice('playground-stop-'.length));
    await page.fill('#key', key);
    await page.click('#start');
    await page.waitForFunction(() => document.getElementById('output').textContent.length > 20, null, { timeout: 60000 });
    await page.click('#stop');
    console.log(JSON.stringify({ status: await page.evaluate(() => document.getElementById('status').textContent) }));
  } else {
    throw new Error('unknown mode ' + mode);
  }
} finally {
  await browser.close();
}

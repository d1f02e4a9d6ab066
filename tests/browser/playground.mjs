// Drives Relay's playground in Debian's headless Chromium (playwright-core, no bundled browser) and prints one
// JSON line with what the page showed. Run by PlaygroundTests and PlaygroundStructuredOutputTests (xunit), which asserts on it:
//   node playground.mjs <relay url> stream <eventsource|fetch|websocket>   (with a gate)
//   node playground.mjs <relay url> stop <eventsource|fetch|websocket>
//   node playground.mjs <relay url> interrupt websocket
//   node playground.mjs <relay url> structured <eventsource|fetch|websocket>   (structured-output mode, with a gate)
// With a gate (stream and structured): the upstream sent the first part of its reply (<length> characters of content)
// and holds the rest until the gate URL is POSTed. The script opens it once the page shows that first part, and
// reports what the page showed then ("gate"): the page provably rendered the reply while the rest was not yet sent.
//   node playground.mjs <relay url> <stream|structured> <mode> <gate url> <length>
// With BROWSER_WS_ENDPOINT (a playwright browser server, see browser-server.mjs) the script uses that Chromium
// instead of launching its own.
import { chromium } from 'playwright-core';

const [baseUrl, scenario, mode, gateUrl, gateLength] = process.argv.slice(2);
const browser = process.env.BROWSER_WS_ENDPOINT
  ? await chromium.connect(process.env.BROWSER_WS_ENDPOINT)
  : await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
try {
  // The simulated upstream's knobs are request headers. Stop: the upstream stalls after 20 tokens until it is
  // aborted, so the page's Stop comes before the end of the reply however slow the machine is.
  const page = await browser.newPage(scenario === 'stop' ? {
    extraHTTPHeaders: { 'x-mock-stall-after-tokens': '20', 'x-mock-stall-ms': '600000' },
  } : {});
  const consoleErrors = [];
  page.on('pageerror', e => consoleErrors.push(String(e)));
  await page.goto(baseUrl + '/');
  await page.selectOption('#mode', mode);
  await page.selectOption('#chunk', '1');
  // Every change of the reply's text, with the time it happened in the page.
  await page.evaluate(() => {
    window.__updates = [];
    const output = document.getElementById('output');
    new MutationObserver(() => window.__updates.push({ t: performance.now(), length: output.textContent.length }))
      .observe(output, { childList: true, characterData: true, subtree: true });
  });
  if (scenario === 'structured') {
    await page.check('#structured');
    // Every change of the rendered partial object (its top-level field count) and of the status, timed in the page.
    await page.evaluate(() => {
      window.__parsed = [];
      window.__status = [];
      const parsed = document.getElementById('parsed');
      new MutationObserver(() => {
        let fields = -1;
        try { fields = Object.keys(JSON.parse(parsed.textContent)).length; } catch { }
        window.__parsed.push({ t: performance.now(), fields });
      }).observe(parsed, { childList: true, characterData: true, subtree: true });
      const status = document.getElementById('status');
      new MutationObserver(() => window.__status.push({ t: performance.now(), text: status.textContent }))
        .observe(status, { childList: true, characterData: true, subtree: true });
    });
  }
  await page.click('#start');

  const result = { scenario, mode, consoleErrors };
  if (gateUrl) {
    await page.waitForFunction(n => document.getElementById('output').textContent.length >= n, Number(gateLength), { timeout: 60000 });
    result.gate = await page.evaluate(() => {
      let fields = -1;
      try { fields = Object.keys(JSON.parse(document.getElementById('parsed').textContent)).length; } catch { }
      return { text: document.getElementById('output').textContent, fields, status: document.getElementById('status').textContent };
    });
    const opened = await fetch(gateUrl, { method: 'POST' });
    if (!opened.ok) throw new Error(`the gate answered ${opened.status}`);
  }
  if (scenario === 'structured') {
    await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    Object.assign(result, await page.evaluate(() => ({
      parsedUpdates: window.__parsed,
      statusUpdates: window.__status,
      parsed: document.getElementById('parsed').textContent,
    })));
  } else if (scenario === 'stream') {
    await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    if (mode === 'eventsource') {
      // A ticket starts one stream: the same URL again must fail.
      result.reuse = await page.evaluate(async () => {
        const response = await fetch(window.relayPlayground.lastStreamUrl);
        return { status: response.status, body: await response.text() };
      });
    }
  } else if (scenario === 'interrupt') {
    // Type into the interrupt box while the reply streams; the page continues in a new response.
    await page.waitForFunction(() => document.getElementById('output').textContent.length > 40, null, { timeout: 60000 });
    result.interruptedAtLength = await page.evaluate(() => document.getElementById('output').textContent.length);
    await page.fill('#interrupt', 'Stop. Tell me about cats instead.');
    await page.click('#interruptSend');
    await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
  } else {
    await page.waitForFunction(() => document.getElementById('output').textContent.length > 20, null, { timeout: 60000 });
    await page.click('#stop');
    if (mode === 'websocket') {
      await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
    }
    result.stoppedAtLength = await page.evaluate(() => document.getElementById('output').textContent.length);
  }

  Object.assign(result, await page.evaluate(() => ({
    status: document.getElementById('status').textContent,
    text: document.getElementById('output').textContent,
    ttft: document.getElementById('ttft').textContent,
    tps: document.getElementById('tps').textContent,
    tokens: document.getElementById('tokens').textContent,
    updates: window.__updates,
    requestId: window.relayPlayground.lastRequestId,
    streamUrl: window.relayPlayground.lastStreamUrl,
    responses: window.relayPlayground.responses,
  })));
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

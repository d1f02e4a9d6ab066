// The bridge scenarios of docs/websocket-protocol.md, run by an independent client (npm ws).
// Usage: RELAY_URL=http://127.0.0.1:PORT MOCK_URL=http://127.0.0.1:PORT node scenarios.mjs <scenario>
// Exits 0 when the scenario holds; otherwise prints why and exits 1. Driven by Relay.IntegrationTests (NodeWsClientTests).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const relay = process.env.RELAY_URL;
const mock = process.env.MOCK_URL;
const fast = { 'x-mock-tokens-per-second': '0', 'x-mock-ttft-ms': '0', 'x-mock-max-tokens': '30' };
const slow = { 'x-mock-tokens-per-second': '20', 'x-mock-ttft-ms': '0', 'x-mock-max-tokens': '200' };

/** Opens a socket; every message is queued for next(). */
function connect(headers, options = {}) {
  const ws = new WebSocket(relay.replace(/^http/, 'ws') + '/v1/chat/ws', ['relay.v1'], { headers, ...options });
  const queue = [];
  const waiters = [];
  let closed = null;
  ws.on('message', (data, isBinary) => {
    const m = { json: JSON.parse(data.toString('utf8')), at: performance.now() };
    queue.push(m);
    waiters.splice(0).forEach((w) => w());
  });
  ws.on('close', (code) => { closed = code; waiters.splice(0).forEach((w) => w()); });
  ws.on('error', () => {});
  const next = async (type, pred = () => true, ms = 15000) => {
    const deadline = performance.now() + ms;
    const seen = [];
    while (true) {
      while (queue.length) {
        const m = queue.shift();
        seen.push(m);
        if (m.json.type === type && pred(m)) return seen;
      }
      if (closed !== null) throw new Error(`closed (${closed}) before ${type}; saw ${seen.map((m) => m.json.type)}`);
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${type}; saw ${seen.map((m) => m.json.type)}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 50); });
    }
  };
  const open = new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const closedCode = () => new Promise((resolve) => (closed !== null ? resolve(closed) : ws.once('close', (c) => resolve(c))));
  return { ws, next, open, closedCode, send: (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o)) };
}

const create = (content = 'Say something.') => ({ type: 'response.create', response: { model: 'mock', messages: [{ role: 'user', content }] } });
const text = (msgs, id) => msgs.filter((m) => m.json.type === 'response.chunk' && (!id || m.json.response_id === id))
  .map((m) => m.json.chunk.choices?.[0]?.delta?.content ?? '').join('');
const record = async (id) => (await fetch(`${mock}/mock/requests/${id}`)).json();
async function waitAborted(id) {
  const deadline = performance.now() + 10000;
  while (true) {
    const r = await record(id);
    if (r.aborted_us != null && r.status !== 'in_progress') return r;
    if (performance.now() > deadline) throw new Error(`upstream ${id} never saw the abort: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}
const firstContent = (n) => { let c = 0; return (m) => (m.json.chunk.choices?.[0]?.delta?.content ?? '') !== '' && ++c >= n; };

const scenarios = {
  async full() {
    const c = connect(fast); await c.open;
    assert.equal(c.ws.protocol, 'relay.v1');
    await c.next('session.created');
    c.send(create());
    const msgs = await c.next('response.done');
    assert.equal(msgs[0].json.type, 'response.created');
    const done = msgs.at(-1).json.response;
    assert.equal(done.status, 'completed');
    assert.equal(done.output_text, text(msgs));
    assert.equal(done.usage.completion_tokens, 30);
    assert.ok(done.usage.prompt_tokens > 0);
    c.ws.close(1000);
    assert.equal(await c.closedCode(), 1000);
  },

  async cutover() {
    const c = connect({ ...slow, 'x-mock-ttft-ms': '100' }); await c.open;
    await c.next('session.created');
    c.send(create('Tell me a story.'));
    const first = await c.next('response.chunk', firstContent(3));
    const firstId = first[0].json.response.id;
    c.send({ type: 'conversation.item.create', item: { role: 'user', content: 'Cats instead.' } });
    const cut = await c.next('response.chunk', (m) => m.json.response_id !== firstId && (m.json.chunk.choices?.[0]?.delta?.content ?? '') !== '');
    const interrupted = cut.find((m) => m.json.type === 'response.done').json.response;
    assert.equal(interrupted.status, 'interrupted');
    const delivered = text([...first, ...cut], firstId);
    assert.equal(interrupted.output_text, delivered);
    const aborted = await waitAborted(interrupted.upstream.request_id);
    assert.ok(aborted.tokens_at_abort < 200);
    const rest = await c.next('response.done');
    const second = rest.at(-1).json.response;
    assert.notEqual(second.id, firstId);
    const body = JSON.parse((await record(second.upstream.request_id)).request_body);
    assert.deepEqual(body.messages.map((m) => m.content), ['Tell me a story.', delivered, 'Cats instead.']);
    assert.equal(body.messages[1].role, 'assistant');
    c.ws.close();
  },

  async cancel() {
    const c = connect(slow); await c.open;
    await c.next('session.created');
    c.send(create());
    await c.next('response.chunk', firstContent(2));
    c.send({ type: 'response.cancel' });
    const done = (await c.next('response.done')).at(-1).json.response;
    assert.equal(done.status, 'cancelled');
    await waitAborted(done.upstream.request_id);
    c.ws.close();
  },

  async sequential() {
    const c = connect({ ...fast, 'x-mock-max-tokens': '8' }); await c.open;
    await c.next('session.created');
    const ids = new Set();
    c.send(create('one'));
    for (const content of ['two', 'three']) {
      const done = (await c.next('response.done')).at(-1).json.response;
      assert.equal(done.status, 'completed');
      ids.add(done.id);
      c.send({ type: 'conversation.item.create', item: { role: 'user', content } });
      await c.next('conversation.item.created');
      c.send({ type: 'response.create' });
    }
    const last = (await c.next('response.done')).at(-1).json.response;
    ids.add(last.id);
    assert.equal(ids.size, 3);
    const body = JSON.parse((await record(last.upstream.request_id)).request_body);
    assert.deepEqual(body.messages.filter((m) => m.role === 'user').map((m) => m.content), ['one', 'two', 'three']);
    assert.equal(body.messages.length, 5);
    c.ws.close();
  },

  async malformed() {
    const c = connect({ ...fast, 'x-mock-max-tokens': '5' }); await c.open;
    await c.next('session.created');
    for (const [raw, code] of [['not json', 'invalid_json'], ['{"type":"nope"}', 'unknown_message_type'], ['[]', 'invalid_message']]) {
      c.send(raw);
      const error = (await c.next('error')).at(-1).json;
      assert.equal(error.error.code, code);
    }
    c.send(create());
    assert.equal((await c.next('response.done')).at(-1).json.response.status, 'completed');
    c.ws.close();
  },

  async oversized() {
    // The test's Relay runs with Relay:WebSocket:MaxMessageBytes = 4096.
    const c = connect(fast); await c.open;
    await c.next('session.created');
    c.send(JSON.stringify({ type: 'x', pad: 'a'.repeat(4000) }));
    assert.equal((await c.next('error')).at(-1).json.error.code, 'unknown_message_type');
    c.send(JSON.stringify({ type: 'x', pad: 'a'.repeat(5000) }));
    assert.equal(await c.closedCode(), 1009);
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
try {
  await scenarios[name]();
  console.log(`ok ${name}`);
  process.exit(0);
} catch (e) {
  console.error(`FAIL ${name}: ${e.stack ?? e}`);
  process.exit(1);
}

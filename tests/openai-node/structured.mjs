// The official npm openai SDK reads Relay's structured-output streams (issue 13).
// Usage: RELAY_URL=http://127.0.0.1:PORT node structured.mjs <partial|violation> <schema-json>
// Prints one JSON line: what the SDK saw. Driven by Relay.IntegrationTests (StructuredOutputSdkTests).
import OpenAI from 'openai';

const [mode, schemaText] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${process.env.RELAY_URL}/v1`, apiKey: 'test', maxRetries: 0 });
const headers = { 'x-mock-reply': 'json', 'x-mock-seed': '3', 'x-mock-ttft-ms': '0', 'x-mock-tokens-per-second': '0' };
if (mode === 'violation') {
  headers['x-mock-json-violation'] = 'type';
  headers['x-mock-json-violation-at-token'] = '30';
}

const out = { content: '', chunks: 0, parsedCount: 0, lastParsed: null, error: null };
try {
  const stream = await client.chat.completions.create({
    model: 'mock',
    stream: true,
    messages: [{ role: 'user', content: 'a ticket' }],
    response_format: { type: 'json_schema', json_schema: { name: 'ticket', schema: JSON.parse(schemaText) } },
    stream_options: { partial_json: true },
  }, { headers });
  for await (const chunk of stream) {
    out.chunks++;
    const delta = chunk.choices?.[0]?.delta;
    if (delta?.content) out.content += delta.content;
    if (delta && 'parsed' in delta) {
      out.parsedCount++;
      out.lastParsed = delta.parsed;
    }
  }
} catch (e) {
  out.error = { name: e.constructor.name, type: e.type ?? null, code: e.code ?? null, param: e.param ?? null, message: e.message };
}

console.log(JSON.stringify(out));

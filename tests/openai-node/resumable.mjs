// The official npm openai SDK reads a long resumable stream through Relay, behind an edge that caps each response's
// duration (Relay ends each response before it: Resume:MaxResponseSeconds).
// Usage: RELAY_URL=http://127.0.0.1:PORT node resumable.mjs <helper|plain> <bearer key> <seed> <max tokens> <tokens per second> <count key>
//   helper: new OpenAI({ fetch: relayResumableFetch() }) (clients/js); plain: the SDK's own fetch.
// Prints one JSON line: { content, chunks, resumes, error }. Driven by Relay.IntegrationTests (ResponseCapClientTests).
import OpenAI from 'openai';
import { relayResumableFetch } from '../../clients/js/relay-resumable-fetch.mjs';

const [mode, key, seed, maxTokens, tokensPerSecond, countKey] = process.argv.slice(2);
const out = { content: '', chunks: 0, resumes: [], error: null };
const fetch = mode === 'helper' ? relayResumableFetch({ onResume: info => out.resumes.push(info) }) : undefined;
const client = new OpenAI({ baseURL: `${process.env.RELAY_URL}/v1`, apiKey: key, maxRetries: 0, ...(fetch ? { fetch } : {}) });
const headers = {
  'x-mock-seed': seed, 'x-mock-max-tokens': maxTokens, 'x-mock-tokens-per-second': tokensPerSecond, 'x-mock-ttft-ms': '0',
  'x-mock-fail-key': countKey,
};

try {
  const stream = await client.chat.completions.create({
    model: 'mock',
    stream: true,
    messages: [{ role: 'user', content: 'Say something.' }],
    stream_options: { resumable: true },
  }, { headers });
  for await (const chunk of stream) {
    out.chunks++;
    out.content += chunk.choices?.[0]?.delta?.content ?? '';
  }
} catch (e) {
  out.error = { name: e.constructor.name, message: e.message, cause: e.cause ? String(e.cause) : null };
}

console.log(JSON.stringify(out));

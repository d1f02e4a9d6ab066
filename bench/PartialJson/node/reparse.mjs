// What callers of npm partial-json do on every delta: parse the whole buffer so far (Allow.ALL).
// Usage: node reparse.mjs deltas.json runs  -> JSON {totalMs: [...], bucketUs: [...]} on stdout.
import { readFileSync } from 'node:fs';
import { parse, ALL } from 'partial-json';

const deltas = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const runs = Number(process.argv[3] ?? 5);
const buckets = 10;
const perBucket = Math.ceil(deltas.length / buckets);

function once() {
  let buffer = '';
  let sink = 0;
  const bucketNs = new Array(buckets).fill(0n);
  const start = process.hrtime.bigint();
  for (let i = 0; i < deltas.length; i++) {
    const t0 = process.hrtime.bigint();
    buffer += deltas[i];
    const value = parse(buffer, ALL);
    if (value !== undefined) sink++;
    bucketNs[Math.floor(i / perBucket)] += process.hrtime.bigint() - t0;
  }
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6;
  if (sink < 0) console.error(sink);
  return { totalMs, bucketUs: bucketNs.map((ns, b) => Number(ns) / 1e3 / Math.min(perBucket, deltas.length - b * perBucket)) };
}

once(); // warm-up (JIT)
const results = Array.from({ length: runs }, once);
results.sort((a, b) => a.totalMs - b.totalMs);
const median = results[Math.floor(runs / 2)];
process.stdout.write(JSON.stringify({ totalMs: median.totalMs, bucketUs: median.bucketUs, runs }));

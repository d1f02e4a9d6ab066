// relay-resumable-fetch.mjs: a fetch for clients of Relay's resumable streams (no dependencies; Node 18+, browsers,
// Deno, Bun). Hand it to the npm `openai` SDK, `new OpenAI({ fetch: relayResumableFetch() })`, and ask for
// `stream_options: { resumable: true }`: when a resumable stream's HTTP response ends before the stream does (Relay's
// Resume:MaxResponseSeconds ends it before an edge's duration cap, or the connection broke), the body the SDK reads
// goes on with the rest of the stream, fetched from GET /relay/v1/streams/{id} with Last-Event-ID, so the SDK sees one
// uninterrupted stream: every event once, in order. Any other response passes through untouched.
// See README.md next to this file.

const DONE = '[DONE]';

/**
 * @param {object} [options]
 * @param {typeof fetch} [options.fetch] the fetch to send requests with (default: globalThis.fetch)
 * @param {(streamId: string, requestUrl: URL) => string | URL} [options.resumeUrl] where to resume a stream (default:
 *   /relay/v1/streams/{id} on the origin of the request)
 * @param {number} [options.maxFailures] consecutive resumes that bring no new event before the body fails (default 5)
 * @param {(info: { streamId: string, lastEventId: string | null, reason: string }) => void} [options.onResume] called
 *   before each resume (reason: 'ended', the response ended cleanly before the stream, or 'failed', it broke)
 * @returns {typeof fetch}
 */
export function relayResumableFetch({ fetch: send = globalThis.fetch, resumeUrl, maxFailures = 5, onResume } = {}) {
  return async function resumableFetch(input, init) {
    const response = await send(input, init);
    const streamId = response.headers.get('relay-stream-id');
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || !streamId || !response.body || !type.toLowerCase().startsWith('text/event-stream')) {
      return response;
    }

    const request = input instanceof Request ? input : null;
    const requestUrl = new URL(request ? request.url : String(input));
    const headers = new Headers(init?.headers ?? request?.headers);
    const resume = {
      streamId,
      url: resumeUrl ? String(resumeUrl(streamId, requestUrl)) : new URL(`/relay/v1/streams/${encodeURIComponent(streamId)}`, requestUrl).href,
      // The stream is resumed with the credential that started it.
      authorization: headers.get('authorization'),
      signal: init?.signal ?? request?.signal,
    };
    const continued = new Response(continuingBody(response.body, resume, { send, maxFailures, onResume }), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
    Object.defineProperty(continued, 'url', { value: response.url });
    return continued;
  };
}

/** The events of every response of one stream as one body: whole events only, each once. */
function continuingBody(first, resume, { send, maxFailures, onResume }) {
  const decoder = new TextDecoder();
  let reader = first.getReader();
  let pending = new Uint8Array(0);
  let lastEventId = null;
  let retryMs = 0;
  let finished = false;
  let failures = 0;

  // Reads one whole block (WHATWG SSE: lines up to a blank line) for what the continuation needs: its id, a retry
  // field, and whether it ends the stream ([DONE], or Relay's final error event).
  function inspect(block) {
    let data = null;
    for (const line of decoder.decode(block).split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const field = line.slice(0, colon);
      const value = line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
      if (field === 'id') lastEventId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
      else if (field === 'data') data = data === null ? value : data + '\n' + value;
    }
    if (data === DONE || (data !== null && data.startsWith('{"error"'))) finished = true;
    if (data !== null) failures = 0; // An event: progress.
  }

  async function next(reason) {
    if (++failures > maxFailures) {
      throw new Error(`Relay stream ${resume.streamId}: ${maxFailures} resumes in a row brought no event (last event ${lastEventId ?? 'none'}).`);
    }
    onResume?.({ streamId: resume.streamId, lastEventId, reason });
    // The stream's own retry field (Relay sends a short one when it ends a response at its cap); after a failure, no
    // sooner than a second.
    const wait = reason === 'failed' ? Math.max(retryMs, 1000) : retryMs;
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait));
    const headers = { Accept: 'text/event-stream' };
    if (resume.authorization) headers.Authorization = resume.authorization;
    if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
    const response = await send(resume.url, { method: 'GET', headers, signal: resume.signal });
    if (!response.ok || !response.body) {
      const detail = await response.text().catch(() => '');
      throw new Error(`Relay stream ${resume.streamId} could not be resumed: ${response.status} ${detail}`);
    }
    return response.body.getReader();
  }

  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (finished || resume.signal?.aborted) throw error;
          chunk = { done: true, failed: true }; // The connection broke: resume, as EventSource would.
        }

        if (!chunk.done) {
          pending = concat(pending, chunk.value);
          const end = lastBlockEnd(pending);
          if (end > 0) {
            const blocks = pending.subarray(0, end);
            pending = pending.slice(end);
            for (let start = 0, stop; (stop = blockEnd(blocks, start)) > 0; start = stop) inspect(blocks.subarray(start, stop));
            controller.enqueue(blocks);
            return;
          }
          continue;
        }

        if (finished) {
          controller.close();
          return;
        }

        // The response ended before the stream: an incomplete block is dropped (the resume sends it whole).
        pending = new Uint8Array(0);
        try {
          reader = await next(chunk.failed ? 'failed' : 'ended');
        } catch (error) {
          controller.error(error);
          return;
        }
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

function concat(a, b) {
  if (a.length === 0) return b;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/** The end (after the blank line) of the block that starts at `start`, or 0 when it is not whole yet. Relay ends lines with \n. */
function blockEnd(bytes, start) {
  for (let i = start + 1; i < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 10) return i + 1;
  }
  return 0;
}

/** The end of the last whole block, or 0. */
function lastBlockEnd(bytes) {
  for (let i = bytes.length - 1; i > 0; i--) {
    if (bytes[i] === 10 && bytes[i - 1] === 10) return i + 1;
  }
  return 0;
}

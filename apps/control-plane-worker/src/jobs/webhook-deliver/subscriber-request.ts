import type { LookupFunction } from "node:net";
import type { Readable } from "node:stream";
import type { SubscriberAddress } from "@keyway/control-plane-api/webhooks/subscriber-address";
import { Agent, request } from "undici";
import { describeJobError } from "../../job-errors";

/** What an attempt records of the subscriber's answer: the first 1 KiB of the body. */
export const RESPONSE_BODY_LIMIT_BYTES = 1024;

export interface SubscriberRequest {
  url: URL;
  /** The addresses checked against the private-address rules: the only ones connected to. */
  addresses: readonly [SubscriberAddress, ...SubscriberAddress[]];
  headers: Record<string, string>;
  body: string;
  connectTimeoutMs: number;
  /** From the request sent to the response headers, and between body chunks. */
  responseTimeoutMs: number;
}

export interface SubscriberAnswer {
  /** The response status; absent when none arrived (connection refused, timeout, TLS failure). */
  status?: number;
  /** Up to 1 KiB of the response body, as text. */
  body?: string;
  /** Why no usable answer arrived. */
  error?: string;
  /** Wall time of the attempt, connection included. */
  durationMs: number;
}

/**
 * POSTs to subscribers over kept-alive connections. The connection goes to the checked addresses
 * whatever DNS answers now (the lookup is pinned: DNS-rebinding safe; Node tries each in turn);
 * TLS still verifies the certificate for the URL's host, which undici sends as SNI. Redirects are
 * not followed (a 3xx is the answer).
 *
 * Connections are pooled per origin AND per set of addresses checked for this attempt, so a
 * pooled connection is only ever reused to an address that passed the private-address rules this
 * time too; when DNS answers differently, a new pool is used. A fresh TCP (and TLS) connection per
 * delivery cost more CPU than the rest of the request (`pnpm bench:webhooks`, docs/benchmarks.md).
 * At most `MAX_POOLS` pools are kept, the least recently used closed first.
 */
export interface SubscriberClient {
  post(input: SubscriberRequest): Promise<SubscriberAnswer>;
  /**
   * True while the origin's last answer (within `SLOW_MEMORY_MS`) came slowly (over
   * `SLOW_ANSWER_MS`) or not at all: the fan-out then queues first attempts to it as jobs rather
   * than make them inline, where a subscriber at its timeout would hold the first attempts of
   * every other event of the batch.
   */
  isSlow(url: URL): boolean;
  /** Closes every pooled connection (the worker stopping); later posts open new ones. */
  close(): Promise<void>;
}

const MAX_POOLS = 256;

/** An answer slower than this marks its origin slow. */
export const SLOW_ANSWER_MS = 1_000;
/** How long an origin stays marked slow after its last slow answer (a good answer clears it). */
export const SLOW_MEMORY_MS = 5 * 60_000;

export function createSubscriberClient(): SubscriberClient {
  const pools = new Map<string, Agent>();
  /** Origin → until when it counts as slow (`performance.now()`); at most `MAX_POOLS` kept. */
  const slowUntil = new Map<string, number>();

  function remember(origin: string, answer: SubscriberAnswer): void {
    slowUntil.delete(origin);
    if (answer.status !== undefined && answer.durationMs <= SLOW_ANSWER_MS) return;
    slowUntil.set(origin, performance.now() + SLOW_MEMORY_MS);
    if (slowUntil.size > MAX_POOLS) slowUntil.delete(slowUntil.keys().next().value as string);
  }

  function poolFor(input: SubscriberRequest): Agent {
    const key = [
      input.url.origin,
      input.connectTimeoutMs,
      input.responseTimeoutMs,
      ...input.addresses.map(({ address }) => address),
    ].join(" ");
    const pooled = pools.get(key);
    if (pooled !== undefined) {
      // Most recently used last: the first entry is the one to close when the map is full.
      pools.delete(key);
      pools.set(key, pooled);
      return pooled;
    }
    const [first] = input.addresses;
    const addresses = [...input.addresses];
    const lookup: LookupFunction = (_hostname, options, callback) => {
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    };
    const agent = new Agent({
      connect: { timeout: input.connectTimeoutMs, lookup },
      headersTimeout: input.responseTimeoutMs,
      bodyTimeout: input.responseTimeoutMs,
    });
    pools.set(key, agent);
    if (pools.size > MAX_POOLS) {
      const [oldestKey, oldest] = pools.entries().next().value as [string, Agent];
      pools.delete(oldestKey);
      void oldest.close().catch(() => {});
    }
    return agent;
  }

  async function post(input: SubscriberRequest): Promise<SubscriberAnswer> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const response = await request(input.url, {
        method: "POST",
        headers: input.headers,
        body: input.body,
        dispatcher: poolFor(input),
        // Belt and braces: no attempt outlives its two timeouts, whatever the peer trickles.
        signal: AbortSignal.timeout(input.connectTimeoutMs + input.responseTimeoutMs),
      });
      const body = await readPrefix(response.body, RESPONSE_BODY_LIMIT_BYTES);
      return { status: response.statusCode, body, durationMs: elapsed() };
    } catch (error) {
      return { error: describeJobError(error), durationMs: elapsed() };
    }
  }

  return {
    async post(input) {
      const answer = await post(input);
      remember(input.url.origin, answer);
      return answer;
    },
    isSlow(url) {
      const until = slowUntil.get(url.origin);
      return until !== undefined && until > performance.now();
    },
    async close() {
      const agents = [...pools.values()];
      pools.clear();
      await Promise.all(agents.map((agent) => agent.destroy().catch(() => {})));
    },
  };
}

/**
 * The first `limit` bytes of a body as text (invalid UTF-8 and NUL, which PostgreSQL's text
 * refuses, become U+FFFD); the rest is not read. A body that breaks off keeps what arrived.
 */
async function readPrefix(body: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      chunks.push(buffer);
      size += buffer.length;
      if (size >= limit) break;
    }
  } catch {
    // Whatever arrived before the body failed is still what the subscriber said.
  } finally {
    body.destroy();
  }
  const text = new TextDecoder("utf-8").decode(Buffer.concat(chunks).subarray(0, limit));
  return text.replaceAll("\u0000", "\ufffd");
}

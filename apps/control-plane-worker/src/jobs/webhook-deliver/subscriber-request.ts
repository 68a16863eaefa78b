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
 * One POST to a subscriber. The connection goes to the checked addresses whatever DNS answers
 * now (the lookup is pinned: DNS-rebinding safe; Node tries each in turn); TLS still verifies the certificate for the URL's host,
 * which undici sends as SNI. Redirects are not followed (a 3xx is the answer). The agent lives for
 * this one request, so no pooled connection to an address checked earlier is ever reused.
 */
export async function postToSubscriber(input: SubscriberRequest): Promise<SubscriberAnswer> {
  const [first] = input.addresses;
  const lookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [...input.addresses]);
    else callback(null, first.address, first.family);
  };
  const agent = new Agent({
    connect: { timeout: input.connectTimeoutMs, lookup },
    headersTimeout: input.responseTimeoutMs,
    bodyTimeout: input.responseTimeoutMs,
  });
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const response = await request(input.url, {
      method: "POST",
      headers: input.headers,
      body: input.body,
      dispatcher: agent,
      // Belt and braces: no attempt outlives its two timeouts, whatever the peer trickles.
      signal: AbortSignal.timeout(input.connectTimeoutMs + input.responseTimeoutMs),
    });
    const body = await readPrefix(response.body, RESPONSE_BODY_LIMIT_BYTES);
    return { status: response.statusCode, body, durationMs: elapsed() };
  } catch (error) {
    return { error: describeJobError(error), durationMs: elapsed() };
  } finally {
    await agent.destroy().catch(() => {});
  }
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

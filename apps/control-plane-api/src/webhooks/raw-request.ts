import type { IncomingMessage } from "node:http";
import type { HttpBindings } from "@hono/node-server";
import {
  type HeaderPairs,
  type NormalizedHeaders,
  normalizeHeaders,
} from "@keyway/integrations-core";
import type { Context } from "hono";
import { badRequest } from "../errors";

/**
 * The raw body and headers of a provider's webhook request, read straight from Node's
 * `IncomingMessage` when the request came through the HTTP server (`server.ts`).
 *
 * Why not `c.req.arrayBuffer()`: `@hono/node-server` then builds a WHATWG `Request` whose body
 * is a web stream wrapping another web stream over the socket, and `c.req.raw.headers` an
 * undici `Headers`; at a thousand events a second that was ≈ 15 % of the API's CPU per event
 * (`pnpm bench:webhooks --profile`, docs/benchmarks.md). Requests that did not come through the
 * Node server (`app.request` in tests) are read through the web `Request` as before, with the
 * same limit.
 */

/** Thrown when the body is over the limit; the caller answers 413 (and audits it). */
export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
}

export interface RawWebhookRequest {
  headers: NormalizedHeaders;
  /**
   * Reads the body, at most `limit` bytes: over it (declared by `content-length` or counted as
   * it streams in) it rejects with `BodyTooLarge` before the rest is read.
   */
  body(limit: number): Promise<Uint8Array>;
}

export function rawWebhookRequest(c: Context): RawWebhookRequest {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  if (incoming === undefined || !(incoming.readable && !incoming.readableDidRead)) {
    return {
      headers: normalizeHeaders(c.req.raw.headers),
      body: (limit) => readWebBody(c.req.raw, limit),
    };
  }
  return {
    headers: normalizeHeaders(headerPairs(incoming.rawHeaders)),
    body: (limit) => readIncomingBody(incoming, limit),
  };
}

/** `rawHeaders` is a flat name, value, name, value list, every repeat kept in order. */
function headerPairs(raw: readonly string[]): HeaderPairs {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string]);
  return pairs;
}

function declaredOverLimit(contentLength: string | null | undefined, limit: number): boolean {
  if (contentLength === undefined || contentLength === null) return false;
  const declared = Number(contentLength);
  return Number.isFinite(declared) && declared > limit;
}

function readIncomingBody(incoming: IncomingMessage, limit: number): Promise<Uint8Array> {
  if (declaredOverLimit(incoming.headers["content-length"], limit)) {
    return Promise.reject(new BodyTooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onFailure);
      incoming.off("close", onFailure);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // The rest is not read: the server drains or closes the connection after the answer.
        cleanup();
        incoming.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onFailure = () => {
      cleanup();
      reject(badRequest("invalid_webhook", "the request body was not received completely"));
    };
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onFailure);
    incoming.once("close", onFailure);
  });
}

async function readWebBody(request: Request, limit: number): Promise<Uint8Array> {
  if (declaredOverLimit(request.headers.get("content-length"), limit)) throw new BodyTooLarge();
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

import type { IncomingMessage } from "node:http";
import type { HttpBindings } from "@hono/node-server";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "./env";
import { badRequest, DomainError } from "./errors";

/**
 * A request's body, read straight from Node's `IncomingMessage` when the request came through
 * the HTTP server (`server.ts`), with a size limit.
 *
 * Why not `c.req.arrayBuffer()` / `c.req.json()`: `@hono/node-server` then builds a WHATWG
 * `Request` (its `Headers`, an `AbortController`) whose body is a web stream wrapping another
 * web stream over the socket. For webhook ingest that was ≈ 15 % of the API's CPU per event
 * (`pnpm bench:webhooks --profile`), and for the internal API's small JSON posts it was the
 * largest fixed cost per request after the assertion check (`pnpm bench:resolve --concurrency
 * 64 --profile`, docs/benchmarks.md). Requests that did not come through the Node server
 * (`app.request` in tests) are read through the web `Request`, with the same limit.
 */

/** The body is over the limit (declared by `content-length` or counted as it streamed in). */
export class BodyTooLarge extends Error {
  override readonly name = "BodyTooLarge";
}

/** The client went away before the whole body arrived. */
export class BodyIncomplete extends Error {
  override readonly name = "BodyIncomplete";
}

/** Node's request under `c` when it came through the Node server; undefined otherwise. */
export function nodeRequest(c: Context): IncomingMessage | undefined {
  return (c.env as Partial<HttpBindings> | undefined)?.incoming;
}

/** Node's request under `c`, while its body is still unread; undefined otherwise. */
export function unreadIncoming(c: Context): IncomingMessage | undefined {
  const incoming = nodeRequest(c);
  return incoming?.readable && !incoming.readableDidRead ? incoming : undefined;
}

/** The body of `c`'s request, at most `limit` bytes (else `BodyTooLarge`). */
export function readRequestBody(c: Context, limit: number): Promise<Uint8Array> {
  const incoming = unreadIncoming(c);
  return incoming === undefined ? readWebBody(c.req.raw, limit) : readIncomingBody(incoming, limit);
}

function declaredOverLimit(contentLength: string | null | undefined, limit: number): boolean {
  if (contentLength === undefined || contentLength === null) return false;
  const declared = Number(contentLength);
  return Number.isFinite(declared) && declared > limit;
}

export function readIncomingBody(incoming: IncomingMessage, limit: number): Promise<Uint8Array> {
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
      reject(new BodyIncomplete("the request body was not received completely"));
    };
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onFailure);
    incoming.once("close", onFailure);
  });
}

/** How much of an unread body is dropped, and for how long, before the connection is closed. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 500;

/**
 * After an answer given before the body was read through (413): the rest is read and dropped, so
 * a keep-alive connection can carry its next request; past 64 MiB or 500 ms the connection is
 * closed instead. The bounds are those of `@hono/node-server`, which does this for hono's routes.
 */
export function drainUnreadBody(incoming: IncomingMessage): void {
  if (incoming.destroyed || incoming.readableEnded) return;
  let size = 0;
  const cleanup = () => {
    clearTimeout(timer);
    incoming.off("data", onData);
    incoming.off("end", cleanup);
    incoming.off("error", cleanup);
  };
  const close = () => {
    cleanup();
    incoming.socket.destroySoon();
  };
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > DRAIN_LIMIT_BYTES) close();
  };
  const timer = setTimeout(close, DRAIN_TIMEOUT_MS);
  timer.unref();
  incoming.on("data", onData);
  incoming.once("end", cleanup);
  incoming.once("error", cleanup);
  incoming.resume();
}

export async function readWebBody(request: Request, limit: number): Promise<Uint8Array> {
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

/**
 * Reads a POST's body from Node (`readRequestBody`) into hono's body cache as text, where
 * `c.req.json()` — the route's validator, and the router's text check on the raw body — finds it:
 * 413 over `maxSize`.
 */
export function jsonBodyFromNode(maxSize: number): MiddlewareHandler<AppEnv> {
  return async function jsonBodyFromNode(c, next) {
    if (c.req.method !== "POST") return next();
    let bytes: Uint8Array;
    try {
      bytes = await readRequestBody(c, maxSize);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        throw new DomainError(
          "payload_too_large",
          "payload_too_large",
          `request body exceeds ${maxSize} bytes`,
        );
      }
      if (error instanceof BodyIncomplete) throw badRequest("invalid_request", error.message);
      throw error;
    }
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
    // Hono's cache holds promises, though its type says otherwise.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    await next();
  };
}

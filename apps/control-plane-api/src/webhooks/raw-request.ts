import type { IncomingMessage } from "node:http";
import {
  type NormalizedHeaders,
  normalizeHeaders,
  normalizeRawHeaders,
} from "@keyway/integrations-core";
import type { Context } from "hono";
import { badRequest } from "../errors";
import {
  BodyIncomplete,
  BodyTooLarge,
  readIncomingBody,
  readWebBody,
  unreadIncoming,
} from "../request-body";

/**
 * The raw body and headers of a provider's webhook request, read straight from Node's
 * `IncomingMessage` when the request came through the HTTP server (`request-body.ts` says why).
 */

/** Thrown when the body is over the limit; the caller answers 413 (and audits it). */
export { BodyTooLarge };

export interface RawWebhookRequest {
  headers: NormalizedHeaders;
  /**
   * Reads the body, at most `limit` bytes: over it (declared by `content-length` or counted as
   * it streams in) it rejects with `BodyTooLarge` before the rest is read.
   */
  body(limit: number): Promise<Uint8Array>;
}

export function rawWebhookRequest(c: Context): RawWebhookRequest {
  const incoming = unreadIncoming(c);
  if (incoming === undefined) {
    return {
      headers: normalizeHeaders(c.req.raw.headers),
      body: (limit) => readWebBody(c.req.raw, limit),
    };
  }
  return rawIncomingWebhookRequest(incoming);
}

/** The same from Node's request, its body still unread (the front door's and hono's route's). */
export function rawIncomingWebhookRequest(incoming: IncomingMessage): RawWebhookRequest {
  return {
    headers: normalizeRawHeaders(incoming.rawHeaders),
    body: (limit) =>
      readIncomingBody(incoming, limit).catch((error: unknown) => {
        if (!(error instanceof BodyIncomplete)) throw error;
        throw badRequest("invalid_webhook", "the request body was not received completely");
      }),
  };
}

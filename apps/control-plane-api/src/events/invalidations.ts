import type { Executor } from "@keyway/db";
import { sql } from "drizzle-orm";
import type postgres from "postgres";
import { z } from "zod";
import type { Logger } from "../logger";

/**
 * Cache invalidations for gateways (SPEC §6.3 `GET /internal/v1/events`). Events travel through
 * PostgreSQL NOTIFY so every control-plane replica sees every change, and a NOTIFY issued inside a
 * transaction is delivered only if that transaction commits.
 */
export const INVALIDATION_CHANNEL = "keyway_invalidations";

export const invalidationEventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("session.revoked"),
    sessionId: z.string(),
    /** The session's hard end: gateways remember the revocation until then. */
    expiresAt: z.string().optional(),
  }),
  z.object({ type: z.literal("connection.updated"), connectionId: z.string() }),
  z.object({ type: z.literal("connection.revoked"), connectionId: z.string() }),
  z.object({
    type: z.literal("credential.rotated"),
    connectionId: z.string(),
    credentialVersion: z.number(),
  }),
  z.object({ type: z.literal("target.updated"), targetId: z.string() }),
  z.object({ type: z.literal("target.disabled"), targetId: z.string() }),
]);
export type InvalidationEvent = z.infer<typeof invalidationEventSchema>;

export async function publishInvalidation(
  executor: Executor,
  event: InvalidationEvent,
): Promise<void> {
  await executor.execute(sql`select pg_notify(${INVALIDATION_CHANNEL}, ${JSON.stringify(event)})`);
}

/**
 * What listeners receive: an invalidation, or `resync` — this process's LISTEN connection was
 * re-established, so notifications committed while it was down are lost and every cache that
 * depends on them must be re-validated (gateways re-confirm their sessions).
 */
export type FeedMessage = InvalidationEvent | { type: "resync" };
export type InvalidationListener = (message: FeedMessage) => void;

/** Fans NOTIFY payloads out to in-process listeners (one LISTEN connection per process). */
export interface InvalidationFeed {
  subscribe(listener: InvalidationListener): () => void;
  close(): Promise<void>;
}

export async function startInvalidationFeed(
  client: postgres.Sql,
  logger?: Pick<Logger, "warn">,
): Promise<InvalidationFeed> {
  const listeners = new Set<InvalidationListener>();
  const broadcast = (message: FeedMessage) => {
    for (const listener of listeners) listener(message);
  };
  let listening = false;
  const subscription = await client.listen(
    INVALIDATION_CHANNEL,
    (payload) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(payload);
      } catch {
        return;
      }
      const event = invalidationEventSchema.safeParse(parsed);
      if (event.success) broadcast(event.data);
    },
    // postgres.js calls this on the first LISTEN and again each time it re-establishes the
    // connection (after a database restart, a network cut): anything notified in between is gone.
    () => {
      if (listening) {
        logger?.warn("database notifications re-established; gateways told to resync");
        broadcast({ type: "resync" });
      }
      listening = true;
    },
  );
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    // With the connection already gone (the database stopped first, as on Ctrl+C under
    // `pnpm start`), there is nothing left to unlisten.
    close: () =>
      subscription.unlisten().catch((error: unknown) => {
        if (!isConnectionGone(error)) throw error;
      }),
  };
}

/**
 * A connection that is closed, ended or destroyed (postgres.js's codes), or that the server
 * reset under a query (its fast shutdown on Ctrl+C: the socket's own codes).
 */
function isConnectionGone(error: unknown): boolean {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : "";
  return (
    code === "CONNECTION_CLOSED" ||
    code === "CONNECTION_ENDED" ||
    code === "CONNECTION_DESTROYED" ||
    code === "ECONNRESET" ||
    code === "EPIPE"
  );
}

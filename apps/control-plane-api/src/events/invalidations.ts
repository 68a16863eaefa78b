import type { Executor } from "@keyway/db";
import { sql } from "drizzle-orm";
import type postgres from "postgres";
import { z } from "zod";

/**
 * Cache invalidations for gateways (SPEC §6.3 `GET /internal/v1/events`). Events travel through
 * PostgreSQL NOTIFY so every control-plane replica sees every change, and a NOTIFY issued inside a
 * transaction is delivered only if that transaction commits.
 */
export const INVALIDATION_CHANNEL = "keyway_invalidations";

export const invalidationEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("session.revoked"), sessionId: z.string() }),
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

export type InvalidationListener = (event: InvalidationEvent) => void;

/** Fans NOTIFY payloads out to in-process listeners (one LISTEN connection per process). */
export interface InvalidationFeed {
  subscribe(listener: InvalidationListener): () => void;
  close(): Promise<void>;
}

export async function startInvalidationFeed(client: postgres.Sql): Promise<InvalidationFeed> {
  const listeners = new Set<InvalidationListener>();
  const subscription = await client.listen(INVALIDATION_CHANNEL, (payload) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    const event = invalidationEventSchema.safeParse(parsed);
    if (!event.success) return;
    for (const listener of listeners) listener(event.data);
  });
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

/** postgres.js's codes for a connection that is closed, ended or destroyed. */
function isConnectionGone(error: unknown): boolean {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : "";
  return (
    code === "CONNECTION_CLOSED" || code === "CONNECTION_ENDED" || code === "CONNECTION_DESTROYED"
  );
}

import { z } from "zod";

/**
 * Cache invalidations from the control plane's event feed (`GET /internal/v1/events`, SPEC §6.3).
 * Unknown event types are ignored (a newer control plane may send more); known ones must parse.
 */
export const invalidationEventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("session.revoked"),
    sessionId: z.string().min(1),
    /** The session's hard end, ISO: how long the revocation must be remembered. */
    expiresAt: z.string().optional(),
  }),
  z.object({ type: z.literal("connection.updated"), connectionId: z.string().min(1) }),
  z.object({ type: z.literal("connection.revoked"), connectionId: z.string().min(1) }),
  z.object({
    type: z.literal("credential.rotated"),
    connectionId: z.string().min(1),
    credentialVersion: z.number(),
  }),
  z.object({ type: z.literal("target.updated"), targetId: z.string().min(1) }),
  z.object({ type: z.literal("target.disabled"), targetId: z.string().min(1) }),
]);

export type InvalidationEvent = z.infer<typeof invalidationEventSchema>;

export interface InvalidationListener {
  /** One event from the feed. */
  onEvent(event: InvalidationEvent): void;
  /**
   * The feed reconnected after a gap in which events may have been missed: drop whatever an
   * unseen event could have invalidated.
   */
  onResync(): void;
}

/** Fans the feed out to the caches that depend on it (authenticate, credentials, tunnels). */
export interface InvalidationHub {
  subscribe(listener: InvalidationListener): () => void;
  publish(event: InvalidationEvent): void;
  resync(): void;
}

export function createInvalidationHub(): InvalidationHub {
  const listeners = new Set<InvalidationListener>();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    publish(event) {
      for (const listener of listeners) listener.onEvent(event);
    },
    resync() {
      for (const listener of listeners) listener.onResync();
    },
  };
}

import type { Duplex } from "node:stream";
import type { InvalidationHub } from "./invalidations";

/**
 * Open CONNECT tunnels by session, so that revoking a session also cuts its long-lived
 * connections (a spliced tunnel is never seen again by `authenticate`).
 */
export interface Tunnels {
  track(sessionId: string, socket: Duplex): void;
  /** Destroys every open tunnel (shutdown). */
  destroyAll(): void;
  close(): void;
}

export function createTunnels(invalidations: InvalidationHub): Tunnels {
  const bySession = new Map<string, Set<Duplex>>();

  function destroySession(sessionId: string): void {
    const sockets = bySession.get(sessionId);
    if (sockets === undefined) return;
    bySession.delete(sessionId);
    for (const socket of sockets) socket.destroy();
  }

  const unsubscribe = invalidations.subscribe({
    onEvent(event) {
      if (event.type === "session.revoked") destroySession(event.sessionId);
    },
    onResync() {},
  });

  return {
    track(sessionId, socket) {
      let sockets = bySession.get(sessionId);
      if (sockets === undefined) {
        sockets = new Set();
        bySession.set(sessionId, sockets);
      }
      sockets.add(socket);
      socket.once("close", () => {
        const current = bySession.get(sessionId);
        if (current === undefined) return;
        current.delete(socket);
        if (current.size === 0) bySession.delete(sessionId);
      });
    },
    destroyAll() {
      for (const sessionId of [...bySession.keys()]) destroySession(sessionId);
    },
    close: unsubscribe,
  };
}

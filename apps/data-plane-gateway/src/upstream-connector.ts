import type { SecureContext, TLSSocket } from "node:tls";
import { buildConnector } from "undici";
import { LruCache } from "./lru-cache";

/**
 * How the forward stage opens upstream connections (the `connect` of every undici pool): undici's
 * own connector, with two changes that keep new connections on abbreviated TLS handshakes
 * (`pnpm bench:storm`: a full handshake costs the gateway its certificate checks, and the
 * upstream its signature, on every connection a burst opens beyond the idle pool).
 *
 * - **The newest TLS session of each upstream host is held.** undici's session cache holds them
 *   through `WeakRef`s only, so a garbage collection drops them and the next connections to that
 *   host do full handshakes again (seen as rounds of 20–50 full handshakes among resumed ones).
 * - **A burst to a host with no session yet waits for one handshake.** Connections started while
 *   the first one (the pioneer) is still handshaking would all do full handshakes; they wait until
 *   it delivers a session ticket and then resume it. They go anyway when the pioneer fails or
 *   closes, when it is up and no ticket followed within `ticketWaitMs`, and after `timeoutMs`; a
 *   host whose pioneer brought no ticket is not waited for again until one arrives.
 *
 * Sharing upstream TLS sessions across sandbox sessions is what sharing the pools already does
 * (README, "Connections and TLS shared across sessions"): no sandbox's data is in them.
 */

export interface UpstreamConnectorOptions {
  /** Connect (TCP and TLS handshake) timeout, as undici's `connect.timeout`. */
  timeoutMs: number;
  secureContext: SecureContext;
  /** Upstream hosts whose session is held. Default 100 (undici's own default). */
  maxHosts?: number;
  /** How long a burst waits for the pioneer's ticket once its handshake is done. Default 250 ms. */
  ticketWaitMs?: number;
}

/** Held for a host whose pioneer brought no ticket: do not wait on it again. */
const NO_TICKETS = "no-tickets";

type Connect = (options: buildConnector.Options, callback: buildConnector.Callback) => void;

export function createUpstreamConnector(
  options: UpstreamConnectorOptions,
): buildConnector.connector {
  // undici's connector returns the socket it opened (its type says void): the `session` listener
  // must be on it before the handshake, since TLS 1.2 delivers the session before `secureConnect`.
  const base = buildConnector({
    timeout: options.timeoutMs,
    secureContext: options.secureContext,
  }) as unknown as (...args: Parameters<Connect>) => TLSSocket | undefined;
  const ticketWaitMs = options.ticketWaitMs ?? 250;
  const sessions = new LruCache<string, Buffer | typeof NO_TICKETS>(options.maxHosts ?? 100);
  /** Connections waiting for a host's pioneer, by host. */
  const waiting = new Map<string, (() => void)[]>();

  function release(key: string): void {
    const waiters = waiting.get(key);
    if (waiters === undefined) return;
    waiting.delete(key);
    for (const go of waiters) go();
  }

  function open(
    key: string,
    connectOptions: buildConnector.Options,
    callback: buildConnector.Callback,
  ): TLSSocket | undefined {
    const socket = base(connectOptions, callback);
    // undici's listener (added first) caches it weakly; this reference keeps it alive.
    socket?.on("session", (session: Buffer) => sessions.set(key, session));
    return socket;
  }

  function pioneer(
    key: string,
    connectOptions: buildConnector.Options,
    callback: buildConnector.Callback,
  ): void {
    waiting.set(key, []);
    let settled = false;
    let ticketTimer: NodeJS.Timeout | undefined;
    // Once only: a later pioneer of the same host has waiters of its own.
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(giveUp);
      if (ticketTimer !== undefined) clearTimeout(ticketTimer);
      release(key);
    };
    const giveUp = setTimeout(done, options.timeoutMs);
    giveUp.unref();
    let socket: TLSSocket | undefined;
    try {
      socket = open(key, connectOptions, (...args) => {
        if (args[0] !== null) done();
        callback(...args);
      });
    } catch (error) {
      done();
      throw error;
    }
    if (socket === undefined) {
      done();
      return;
    }
    socket.once("session", done);
    socket.once("close", done);
    socket.once("secureConnect", () => {
      if (settled) return;
      ticketTimer = setTimeout(() => {
        if (sessions.get(key) === undefined) sessions.set(key, NO_TICKETS);
        done();
      }, ticketWaitMs);
      ticketTimer.unref();
    });
  }

  return function connect(connectOptions, callback) {
    if (connectOptions.protocol !== "https:" || connectOptions.httpSocket !== undefined) {
      base(connectOptions, callback);
      return;
    }
    const key = connectOptions.servername || connectOptions.hostname;
    if (sessions.get(key) !== undefined) {
      open(key, connectOptions, callback);
      return;
    }
    const waiters = waiting.get(key);
    if (waiters !== undefined) {
      waiters.push(() => {
        // Called from another connection's event: a throw must reach this one's caller.
        try {
          open(key, connectOptions, callback);
        } catch (error) {
          callback(error as Error, null);
        }
      });
      return;
    }
    pioneer(key, connectOptions, callback);
  };
}

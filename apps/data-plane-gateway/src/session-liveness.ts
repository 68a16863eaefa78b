import type { Clock } from "@keyway/crypto";
import type { Logger } from "@keyway/observability";
import { GatewayError } from "./errors";
import type { InvalidationHub } from "./invalidations";
import { createRequestSlots } from "./request-slots";

/**
 * What this gateway knows of each session's liveness (SPEC §7 "Session"). A valid token is not
 * enough: a session may be revoked long before its token expires, and a gateway may have started,
 * or lost its event stream, after the revocation was announced. So:
 *
 * - A session is served only once the control plane has confirmed it live. Its first use asks
 *   (`POST /internal/v1/sessions/liveness`; the sessions asked for in one event-loop turn travel in
 *   one request, with the digests of their plans, so the source can fetch the plans it lacks in
 *   the same request; while a request is under way, new checks wait and go together).
 * - `session.revoked` from the event feed marks it revoked at once; so does a "not live" answer.
 *   Either is remembered until the session's hard end, and a newly learnt one is published on the
 *   hub, so open tunnels close and credentials resolved for it are dropped.
 * - Every `recheckMs`, every session in use is re-confirmed in one batch, whatever the feed
 *   delivered: a notice lost anywhere — this gateway's stream down, or the control plane's own
 *   database notification connection down — keeps a revoked session usable for at most that long.
 * - A resync (the stream reconnected, or the control plane says it may have missed notices)
 *   voids every confirmation: the next request of each session waits for a fresh one, and a batch
 *   re-check starts at once.
 * - Fail closed: when the control plane cannot answer, a session never confirmed is refused
 *   (502 `control_plane_unavailable`), and one confirmed before keeps working until
 *   `outageGraceMs` after its last confirmation.
 */

export interface SessionLivenessAnswer {
  sessionId: string;
  live: boolean;
  /** The session's hard end, ISO; null when the control plane does not know the session. */
  expiresAt: string | null;
}

export interface SessionLivenessSource {
  /** `planDigests`: the plans of the sessions confirmed for a request, to fetch along if lacking. */
  checkSessions(
    sessionIds: readonly string[],
    planDigests?: readonly string[],
  ): Promise<readonly SessionLivenessAnswer[]>;
}

export interface SessionLivenessOptions {
  source: SessionLivenessSource;
  clock: Clock;
  invalidations: InvalidationHub;
  logger: Logger;
  /** Re-confirmation period of every session in use. Default 10 s. */
  recheckMs?: number;
  /** How long a confirmation outlives an unreachable control plane. Default 5 minutes. */
  outageGraceMs?: number;
  /** How long a revocation is remembered when its session's end is unknown. Default 24 h. */
  revocationRetentionMs?: number;
  /** Most ids in one liveness request (the control plane accepts 1,000). */
  batchSize?: number;
  /**
   * Longest a liveness request holds the slot that checks asked for meanwhile wait for
   * (`request-slots.ts`). Default 50 ms.
   */
  slotMs?: number;
}

export interface SessionLiveness {
  /** How long a confirmation outlives an unreachable control plane (`outageGraceMs`). */
  readonly outageGraceMs: number;
  /**
   * Whether the session may be served now without asking: confirmed live since the last resync,
   * within the outage grace, and not revoked. The hot path: no allocation, no promise.
   */
  isConfirmed(sessionId: string, nowMs: number): boolean;
  isRevoked(sessionId: string): boolean;
  /**
   * Resolves once the control plane confirms the session live (or, when it cannot be reached, a
   * confirmation within the grace still holds); rejects 407 when it is not live and 502
   * `control_plane_unavailable` when liveness cannot be established. `planDigest`, the session's
   * plan, is passed to the source with the check.
   */
  confirm(sessionId: string, tokenExpiresAtMs: number, planDigest?: string): Promise<void>;
  /** Starts the periodic re-check. */
  start(): void;
  close(): void;
}

interface SessionState {
  revoked: boolean;
  /** Last confirmation that the session is live (epoch ms); -Infinity before the first. */
  confirmedAtMs: number;
  /** The resync epoch of that confirmation: older epochs do not count. */
  confirmedEpoch: number;
  lastUsedMs: number;
  /** When the entry may be dropped: the session's end (or its token's expiry) when known. */
  forgetAtMs: number;
}

type CheckOutcome = "live" | "not_live" | "unavailable";

interface PendingCheck {
  readonly sessionId: string;
  readonly planDigest: string | undefined;
  readonly epoch: number;
  readonly promise: Promise<CheckOutcome>;
  resolve(outcome: CheckOutcome): void;
}

/**
 * Liveness requests under way at once (`request-slots.ts`). One, as for resolutions
 * (`control-plane-client.ts`): a request costs the control plane far more than a session in it.
 */
const MAX_REQUESTS_IN_FLIGHT = 1;
const NOT_LIVE = "session is no longer live";
const UNAVAILABLE = new GatewayError(
  "control_plane_unavailable",
  "session liveness cannot be confirmed: the control plane is unreachable; try again",
);

export function createSessionLiveness(options: SessionLivenessOptions): SessionLiveness {
  const { source, clock, logger } = options;
  const recheckMs = options.recheckMs ?? 10_000;
  const graceMs = options.outageGraceMs ?? 5 * 60_000;
  const retentionMs = options.revocationRetentionMs ?? 24 * 3600_000;
  const batchSize = options.batchSize ?? 1000;
  const states = new Map<string, SessionState>();
  /** Checks asked for and not yet answered, by session id. */
  const pending = new Map<string, PendingCheck>();
  /** Checks waiting to be sent: at the end of this event-loop turn, or when a slot frees. */
  const queued: PendingCheck[] = [];
  let flushScheduled = false;
  // Checks asked for while a request is under way go together in the next one.
  const slots = createRequestSlots({
    max: MAX_REQUESTS_IN_FLIGHT,
    holdMs: options.slotMs ?? 50,
    onFree: () => schedule(),
  });
  let epoch = 0;
  let timer: NodeJS.Timeout | undefined;
  let lastFailureLogMs = -Infinity;

  function stateOf(sessionId: string, nowMs: number): SessionState {
    let state = states.get(sessionId);
    if (state === undefined) {
      state = {
        revoked: false,
        confirmedAtMs: -Infinity,
        confirmedEpoch: -1,
        lastUsedMs: nowMs,
        forgetAtMs: nowMs + retentionMs,
      };
      states.set(sessionId, state);
    }
    return state;
  }

  function forgetAt(expiresAt: string | null | undefined, nowMs: number): number {
    const endMs = expiresAt ? Date.parse(expiresAt) : Number.NaN;
    return Number.isFinite(endMs) ? endMs : nowMs + retentionMs;
  }

  /** Marks a session revoked; tells the hub when this gateway did not know yet. */
  function markRevoked(sessionId: string, forgetAtMs: number): void {
    const state = stateOf(sessionId, clock.now().getTime());
    state.forgetAtMs = Math.max(state.forgetAtMs, forgetAtMs);
    if (state.revoked) return;
    state.revoked = true;
    options.invalidations.publish({ type: "session.revoked", sessionId });
  }

  function settle(answer: SessionLivenessAnswer, checkEpoch: number, nowMs: number): CheckOutcome {
    if (!answer.live) {
      markRevoked(answer.sessionId, forgetAt(answer.expiresAt, nowMs));
      return "not_live";
    }
    const state = states.get(answer.sessionId);
    // A revocation that arrived while the answer was on its way wins: revoked is final.
    if (state === undefined || state.revoked) return state?.revoked ? "not_live" : "live";
    state.confirmedAtMs = nowMs;
    state.confirmedEpoch = checkEpoch;
    state.forgetAtMs = forgetAt(answer.expiresAt, nowMs);
    return "live";
  }

  async function runBatch(checks: readonly PendingCheck[]): Promise<void> {
    let answers: readonly SessionLivenessAnswer[] | undefined;
    try {
      const planDigests: string[] = [];
      for (const c of checks) if (c.planDigest !== undefined) planDigests.push(c.planDigest);
      answers = await source.checkSessions(
        checks.map((c) => c.sessionId),
        planDigests,
      );
    } catch (error) {
      const nowMs = clock.now().getTime();
      if (nowMs - lastFailureLogMs > 10_000) {
        lastFailureLogMs = nowMs;
        logger.warn("session liveness check failed", {
          sessions: checks.length,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
    const nowMs = clock.now().getTime();
    const byId = new Map(answers?.map((answer) => [answer.sessionId, answer]));
    for (const check of checks) {
      const answer = byId.get(check.sessionId);
      if (pending.get(check.sessionId) === check) pending.delete(check.sessionId);
      check.resolve(answer === undefined ? "unavailable" : settle(answer, check.epoch, nowMs));
    }
  }

  function schedule(): void {
    if (flushScheduled || queued.length === 0 || !slots.free) return;
    flushScheduled = true;
    setImmediate(flush);
  }

  function flush(): void {
    flushScheduled = false;
    while (queued.length > 0 && slots.free) {
      const release = slots.take();
      void runBatch(queued.splice(0, batchSize)).finally(release);
    }
  }

  /** The check of `sessionId` under way for the current epoch, or a new one queued. */
  function check(sessionId: string, planDigest?: string): Promise<CheckOutcome> {
    const existing = pending.get(sessionId);
    if (existing !== undefined && existing.epoch === epoch) return existing.promise;
    // A check of an older epoch still answers its own waiters when its batch returns.
    let resolve: (outcome: CheckOutcome) => void = () => {};
    const promise = new Promise<CheckOutcome>((r) => {
      resolve = r;
    });
    const entry: PendingCheck = { sessionId, planDigest, epoch, promise, resolve };
    pending.set(sessionId, entry);
    queued.push(entry);
    schedule();
    return promise;
  }

  function withinGrace(state: SessionState, nowMs: number): boolean {
    return nowMs - state.confirmedAtMs <= graceMs;
  }

  /** Re-checks every session in use; forgets what no longer matters. */
  function recheckAll(): void {
    const nowMs = clock.now().getTime();
    for (const [id, state] of states) {
      const unused = nowMs - state.lastUsedMs > graceMs;
      if (nowMs >= state.forgetAtMs || (!state.revoked && unused)) {
        states.delete(id);
        continue;
      }
      if (!state.revoked && !unused) void check(id);
    }
  }

  const unsubscribe = options.invalidations.subscribe({
    onEvent(event) {
      if (event.type !== "session.revoked") return;
      const state = stateOf(event.sessionId, clock.now().getTime());
      state.revoked = true;
      state.forgetAtMs = Math.max(
        state.forgetAtMs,
        forgetAt(event.expiresAt, clock.now().getTime()),
      );
    },
    onResync() {
      // Notices may have been missed: no confirmation from before counts any more.
      epoch++;
      recheckAll();
    },
  });

  return {
    outageGraceMs: graceMs,

    isConfirmed(sessionId, nowMs) {
      const state = states.get(sessionId);
      if (state === undefined || state.revoked || state.confirmedEpoch !== epoch) return false;
      if (nowMs - state.confirmedAtMs > graceMs) return false;
      state.lastUsedMs = nowMs;
      return true;
    },

    isRevoked(sessionId) {
      return states.get(sessionId)?.revoked === true;
    },

    async confirm(sessionId, tokenExpiresAtMs, planDigest) {
      const nowMs = clock.now().getTime();
      const state = stateOf(sessionId, nowMs);
      state.lastUsedMs = nowMs;
      if (!state.revoked && state.confirmedAtMs === -Infinity) {
        state.forgetAtMs = Math.max(state.forgetAtMs, tokenExpiresAtMs);
      }
      if (state.revoked) throw new GatewayError("proxy_auth_required", NOT_LIVE);
      const outcome = await check(sessionId, planDigest);
      if (state.revoked || outcome === "not_live") {
        throw new GatewayError("proxy_auth_required", NOT_LIVE);
      }
      if (outcome === "live") return;
      // The control plane did not answer: a confirmation within the grace still holds.
      if (withinGrace(state, clock.now().getTime())) return;
      throw UNAVAILABLE;
    },

    start() {
      if (timer !== undefined) return;
      timer = setInterval(recheckAll, recheckMs);
      timer.unref();
    },

    close() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      unsubscribe();
      for (const check of pending.values()) check.resolve("unavailable");
      pending.clear();
    },
  };
}

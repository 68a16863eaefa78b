import type { Clock } from "@keyway/crypto";
import type { EgressRoute } from "@keyway/integrations-core";
import { GatewayError } from "../errors";
import type { InvalidationEvent, InvalidationHub } from "../invalidations";
import { LruCache } from "../lru-cache";

/**
 * Stage 4 — resolve the credential of a matched route, just in time (SPEC §7 "Matched request").
 * Cached by plan digest + route id; one control-plane call per key at a time (single flight);
 * kept until the control plane's expiry minus a safety margin, and at most `maxTtlMs` for secrets
 * that never expire; dropped on invalidation events. The cache is kept through a control-plane
 * outage (cached credentials keep working until they expire) and dropped when the event feed
 * reconnects, since events may have been missed meanwhile.
 */

export interface CredentialSource {
  resolveCredential(request: {
    sessionId: string;
    routeId: string;
  }): Promise<{ value: string; expiresAt: Date | null }>;
}

export interface CredentialCacheObserver {
  hit(): void;
  miss(): void;
}

export interface ResolveCredentialOptions {
  source: CredentialSource;
  clock: Clock;
  invalidations: InvalidationHub;
  observer?: CredentialCacheObserver;
  /** Subtracted from the control plane's expiry. Default 30 s. */
  expiryMarginMs?: number;
  /** Longest a credential is cached, whatever its expiry. Default 5 minutes. */
  maxTtlMs?: number;
  /** Plans whose credentials are cached. Default 4,096. */
  maxPlans?: number;
}

interface CachedCredential {
  readonly value: string;
  readonly expiresAtMs: number;
  readonly connectionId: string | undefined;
  /** The session whose resolution the control plane authorized. */
  readonly sessionId: string;
}

/** The credentials of one plan: route id → value, plus the resolutions under way. */
interface PlanCredentials {
  readonly byRoute: Map<string, CachedCredential>;
  readonly loading: Map<string, Promise<CachedCredential>>;
}

export interface ResolveCredentialSession {
  sessionId: string;
}

export interface ResolveCredential {
  /**
   * The route's secret, or null for `auth.type: "none"`; 502 `credential_unavailable` on
   * failure, 407 when the control plane says the session is not live.
   */
  resolveRouteCredential(
    session: ResolveCredentialSession,
    planDigest: string,
    route: EgressRoute,
  ): string | null | Promise<string | null>;
  close(): void;
}

const NOOP_OBSERVER: CredentialCacheObserver = { hit() {}, miss() {} };

/** The control plane's refusal for a session that is revoked, expired or unknown. */
export const SESSION_NOT_LIVE = "session_not_live";

function isSessionNotLive(error: unknown): boolean {
  // Compared without case: control planes before the error-code convention sent upper case.
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    typeof error.code === "string" &&
    error.code.toLowerCase() === SESSION_NOT_LIVE
  );
}

export function createResolveCredential(options: ResolveCredentialOptions): ResolveCredential {
  const { source, clock } = options;
  const observer = options.observer ?? NOOP_OBSERVER;
  const marginMs = options.expiryMarginMs ?? 30_000;
  const maxTtlMs = options.maxTtlMs ?? 5 * 60_000;
  const plans = new LruCache<string, PlanCredentials>(options.maxPlans ?? 4_096);
  // Bumped by every invalidation: a resolution that started before one is used once, not cached.
  let generation = 0;

  function dropWhere(predicate: (entry: CachedCredential) => boolean): void {
    generation++;
    plans.deleteWhere((credentials) => {
      for (const [routeId, entry] of credentials.byRoute) {
        if (predicate(entry)) credentials.byRoute.delete(routeId);
      }
      return credentials.byRoute.size === 0 && credentials.loading.size === 0;
    });
  }

  function invalidate(event: InvalidationEvent): void {
    switch (event.type) {
      case "session.revoked":
        dropWhere((entry) => entry.sessionId === event.sessionId);
        return;
      case "connection.updated":
      case "connection.revoked":
      case "credential.rotated":
        dropWhere((entry) => entry.connectionId === event.connectionId);
        return;
      case "target.updated":
      case "target.disabled":
        // Routes do not name their target: drop everything rather than guess.
        dropAll();
        return;
    }
  }

  function dropAll(): void {
    generation++;
    plans.clear();
  }

  async function load(
    credentials: PlanCredentials,
    sessionId: string,
    route: EgressRoute,
  ): Promise<CachedCredential> {
    const startedGeneration = generation;
    let resolved: { value: string; expiresAt: Date | null };
    try {
      resolved = await source.resolveCredential({ sessionId, routeId: route.id });
    } catch (error) {
      if (isSessionNotLive(error)) {
        // Revoked (perhaps while the event feed was down) or unknown to the control plane: told
        // to the hub, so the answer is remembered and the session's tunnels close.
        options.invalidations.publish({ type: "session.revoked", sessionId });
        throw new GatewayError("proxy_auth_required", "session is no longer live", {
          cause: error,
        });
      }
      throw new GatewayError(
        "credential_unavailable",
        "the credential for this route is unavailable",
        { cause: error },
      );
    }
    const nowMs = clock.now().getTime();
    const untilMs =
      resolved.expiresAt === null
        ? nowMs + maxTtlMs
        : Math.min(resolved.expiresAt.getTime() - marginMs, nowMs + maxTtlMs);
    const entry: CachedCredential = {
      value: resolved.value,
      expiresAtMs: untilMs,
      connectionId: route.credential?.connectionId,
      sessionId,
    };
    if (untilMs > nowMs && generation === startedGeneration) {
      credentials.byRoute.set(route.id, entry);
    }
    return entry;
  }

  const unsubscribe = options.invalidations.subscribe({ onEvent: invalidate, onResync: dropAll });

  return {
    resolveRouteCredential(session, planDigest, route) {
      if (route.auth.type === "none") return null;
      let credentials = plans.get(planDigest);
      if (credentials === undefined) {
        credentials = { byRoute: new Map(), loading: new Map() };
        plans.set(planDigest, credentials);
      }
      const cached = credentials.byRoute.get(route.id);
      if (cached !== undefined) {
        if (cached.expiresAtMs > clock.now().getTime()) {
          observer.hit();
          return cached.value;
        }
        credentials.byRoute.delete(route.id);
      }
      observer.miss();
      let pending = credentials.loading.get(route.id);
      if (pending === undefined) {
        const owner = credentials;
        pending = load(owner, session.sessionId, route).finally(() =>
          owner.loading.delete(route.id),
        );
        owner.loading.set(route.id, pending);
      }
      return pending.then((entry) => entry.value);
    },
    close: unsubscribe,
  };
}

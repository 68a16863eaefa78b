import type { Clock } from "@keyway/crypto";
import type { EgressRoute } from "@keyway/integrations-core";
import {
  formatTraceparent,
  newSpanId,
  remoteContext,
  SpanKind,
  SpanStatusCode,
  type TraceParent,
  type Tracer,
  traceparentOf,
} from "@keyway/observability";
import { GatewayError } from "../errors";
import type { InvalidationEvent, InvalidationHub } from "../invalidations";

/**
 * Stage 4 — resolve the credential of a matched route, just in time (SPEC §7 "Matched request").
 * Cached per route of a cached plan (plan digest + route id); one control-plane call per route at
 * a time (single flight); kept until the control plane's expiry minus a safety margin, and at most
 * `maxTtlMs` for secrets that never expire; dropped on invalidation events. The cache is kept
 * through a control-plane outage (cached credentials keep working until they expire) and dropped
 * when the event feed reconnects, since events may have been missed meanwhile.
 *
 * Entries belong to the route object (a `WeakMap`; the plan cache gives each plan's routes their
 * own objects), so they live as long as their plan stays in memory — bounded by the plan cache's
 * bytes, never a count of plans that thousands of sandboxes would overrun — and a hit allocates
 * nothing. Invalidations cannot walk a `WeakMap`: each records the generation it happened at, and
 * an entry resolved before a matching invalidation is stale.
 */

export interface CredentialSource {
  resolveCredential(request: {
    sessionId: string;
    routeId: string;
    /** W3C `traceparent` sent with the call: the control plane audits under its trace id. */
    traceparent?: string;
  }): Promise<{ value: string; expiresAt: Date | null }>;
}

/**
 * The trace of the request that needs a credential (its exchange record). A resolution started
 * for it carries its trace to the control plane; requests joining that resolution (single flight)
 * wait on it under their own traces. When traces are exported and the sandbox sent no
 * `traceparent`, the resolution's span starts the trace and `traceId` is set to its id, so the
 * access log line names the exported trace.
 */
export interface CredentialTrace {
  traceId: string;
  traceParent?: TraceParent | null | undefined;
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
  /** Spans of resolutions (control-plane calls); absent when traces are off. */
  tracer?: Tracer | undefined;
  /** Subtracted from the control plane's expiry. Default 30 s. */
  expiryMarginMs?: number;
  /** Longest a credential is cached, whatever its expiry. Default 5 minutes. */
  maxTtlMs?: number;
}

interface CachedCredential {
  readonly value: string;
  readonly expiresAtMs: number;
  readonly connectionId: string | undefined;
  /** The session whose resolution the control plane authorized. */
  readonly sessionId: string;
  /** The invalidation generation when its resolution started. */
  readonly generation: number;
}

/** When something was invalidated: its generation, and the time (to forget it later). */
interface Invalidated {
  readonly generation: number;
  readonly atMs: number;
}

export interface ResolveCredentialSession {
  sessionId: string;
}

/** A resolution under way for a route, and the session it asks for. */
interface Loading {
  readonly sessionId: string;
  readonly promise: Promise<CachedCredential>;
}

/**
 * How many other sessions' resolutions a request joins before it resolves alone: each more is
 * joined only after the one before was refused as not live for the session that asked.
 */
const MAX_JOINS = 2;

/** What `load` throws when the control plane says the asking session is not live. */
function isNotLiveRefusal(error: unknown): boolean {
  return error instanceof GatewayError && error.code === "proxy_auth_required";
}

export interface ResolveCredential {
  /**
   * The route's secret, or null for `auth.type: "none"`; 502 `credential_unavailable` on
   * failure, 407 when the control plane says the session is not live.
   */
  resolveRouteCredential(
    session: ResolveCredentialSession,
    route: EgressRoute,
    trace?: CredentialTrace,
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
  const { source, clock, tracer } = options;
  const observer = options.observer ?? NOOP_OBSERVER;
  const marginMs = options.expiryMarginMs ?? 30_000;
  const maxTtlMs = options.maxTtlMs ?? 5 * 60_000;
  const cached = new WeakMap<EgressRoute, CachedCredential>();
  const loading = new WeakMap<EgressRoute, Loading>();
  // Bumped by every invalidation. An entry is fresh only if its resolution started at or after
  // the last invalidation that concerns it: one overtaken by an invalidation is used once.
  let generation = 0;
  let droppedAll = 0;
  const droppedConnections = new Map<string, Invalidated>();
  const droppedSessions = new Map<string, Invalidated>();

  function isFresh(entry: CachedCredential, nowMs: number): boolean {
    if (entry.expiresAtMs <= nowMs || entry.generation < droppedAll) return false;
    // Both maps are empty or small: they hold only the last few minutes of invalidations.
    const session = droppedSessions.get(entry.sessionId);
    if (session !== undefined && entry.generation < session.generation) return false;
    if (entry.connectionId === undefined) return true;
    const connection = droppedConnections.get(entry.connectionId);
    return connection === undefined || entry.generation >= connection.generation;
  }

  /** Records an invalidation of `key`, and forgets those no entry can predate any more. */
  function drop(map: Map<string, Invalidated>, key: string): void {
    const nowMs = clock.now().getTime();
    generation++;
    map.set(key, { generation, atMs: nowMs });
    // Every entry resolved before an invalidation has expired `maxTtlMs` after it.
    for (const [name, invalidated] of map) {
      if (invalidated.atMs + maxTtlMs < nowMs) map.delete(name);
    }
  }

  function dropAll(): void {
    generation++;
    droppedAll = generation;
    droppedConnections.clear();
    droppedSessions.clear();
  }

  function invalidate(event: InvalidationEvent): void {
    switch (event.type) {
      case "session.revoked":
        drop(droppedSessions, event.sessionId);
        return;
      case "connection.updated":
      case "connection.revoked":
      case "credential.rotated":
        drop(droppedConnections, event.connectionId);
        return;
      case "target.updated":
      case "target.disabled":
        // Routes do not name their target: drop everything rather than guess.
        dropAll();
        return;
    }
  }

  /** A resolution under the requester's trace, in a span of its own when traces are on. */
  async function tracedLoad(
    sessionId: string,
    route: EgressRoute,
    trace: CredentialTrace | undefined,
  ): Promise<CachedCredential> {
    const parent = trace?.traceParent ?? null;
    if (tracer === undefined) {
      const traceparent =
        trace === undefined
          ? undefined
          : formatTraceparent({
              traceId: trace.traceId,
              spanId: parent?.spanId ?? newSpanId(),
              flags: parent?.flags ?? 0,
            });
      return load(sessionId, route, traceparent);
    }
    const span = tracer.startSpan(
      "gateway resolve credential",
      {
        kind: SpanKind.CLIENT,
        attributes: { "keyway.session_id": sessionId, "keyway.route_id": route.id },
      },
      parent === null ? undefined : remoteContext(parent),
    );
    if (trace !== undefined && parent === null) trace.traceId = span.spanContext().traceId;
    try {
      return await load(sessionId, route, traceparentOf(span));
    } catch (error) {
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof GatewayError ? error.code : "error",
      });
      throw error;
    } finally {
      span.end();
    }
  }

  async function load(
    sessionId: string,
    route: EgressRoute,
    traceparent: string | undefined,
  ): Promise<CachedCredential> {
    const startedGeneration = generation;
    let resolved: { value: string; expiresAt: Date | null };
    try {
      resolved = await source.resolveCredential({
        sessionId,
        routeId: route.id,
        ...(traceparent === undefined ? {} : { traceparent }),
      });
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
      generation: startedGeneration,
    };
    if (untilMs > nowMs) cached.set(route, entry);
    return entry;
  }

  /**
   * The route's resolution under way (single flight), or a new one for `sessionId`. Sessions on
   * one plan share its routes, so a request may join another session's resolution: that one's
   * credential serves it, but a `session_not_live` refusal concerns the asking session only (it
   * was revoked, perhaps while this gateway's event feed was down). A request that joined it asks
   * again instead of telling a live session it is revoked: the first to ask again resolves for its
   * own session and the others join that, as before; after `joins` such refusals a request
   * resolves for its own session alone.
   */
  function loadFor(
    sessionId: string,
    route: EgressRoute,
    trace: CredentialTrace | undefined,
    joins: number,
  ): Promise<CachedCredential> {
    const pending = loading.get(route);
    if (pending !== undefined && pending.sessionId === sessionId) return pending.promise;
    if (pending !== undefined && joins > 0) {
      return pending.promise.catch((error: unknown) => {
        if (!isNotLiveRefusal(error)) throw error;
        // The refused resolution has left `loading` by now (its `finally` ran first).
        return loadFor(sessionId, route, trace, joins - 1);
      });
    }
    const promise: Promise<CachedCredential> = tracedLoad(sessionId, route, trace).finally(() => {
      if (loading.get(route)?.promise === promise) loading.delete(route);
    });
    // Another session's resolution stays the one later requests join.
    if (pending === undefined) loading.set(route, { sessionId, promise });
    return promise;
  }

  const unsubscribe = options.invalidations.subscribe({ onEvent: invalidate, onResync: dropAll });

  return {
    resolveRouteCredential(session, route, trace) {
      if (route.auth.type === "none") return null;
      const entry = cached.get(route);
      if (entry !== undefined) {
        if (isFresh(entry, clock.now().getTime())) {
          observer.hit();
          return entry.value;
        }
        cached.delete(route);
      }
      observer.miss();
      return loadFor(session.sessionId, route, trace, MAX_JOINS).then((resolved) => resolved.value);
    },
    close: unsubscribe,
  };
}

import { setTimeout as sleep } from "node:timers/promises";
import { type Clock, createGatewayAssertionSigner, type Ed25519PrivateJwk } from "@keyway/crypto";
import {
  type CompiledRuntimePlan,
  compiledPlanSchema,
  planDigest,
} from "@keyway/integrations-core";
import type { Logger } from "@keyway/observability";
import { Pool } from "undici";
import { z } from "zod";
import { type InvalidationHub, invalidationEventSchema } from "./invalidations";
import { createRequestSlots } from "./request-slots";
import { Circuit } from "./resilience/circuit-breaker";
import type { SessionLivenessAnswer } from "./session-liveness";
import { createSseDecoder, type ServerSentEvent } from "./sse-decoder";

/**
 * The gateway's side of the control plane's internal API (SPEC §6.3): plans by digest (kept by
 * `plan-cache.ts`), credential resolution and the invalidation feed. Every request carries a fresh
 * gateway assertion (each is accepted once), over one keep-alive undici pool.
 *
 * During an outage requests fail fast: a refused connection fails at once, a black-holed or
 * stalled control plane after `requestTimeoutMs`, and after `failureThreshold` failures in a row
 * (no answer, or 503/504: the control plane cannot reach its database) a circuit opens, so later
 * requests fail at once; every `coolDownMs` one request is let through to probe, and the event
 * stream connecting again closes it. The event stream reconnects within `eventsBackoffMs.max` of
 * the control plane's return.
 */

export interface GatewayIdentity {
  gatewayId: string;
  privateJwk: Ed25519PrivateJwk;
  kid: string;
}

export interface ControlPlaneClientOptions {
  /** `gateway.control_plane_url`, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  identity: GatewayIdentity;
  /** `internal.audience`: the `aud` of gateway assertions. */
  audience: string;
  clock: Clock;
  logger: Logger;
  /** Extra CA certificates (PEM) to trust for an `https` control plane. */
  ca?: string | readonly string[];
  /**
   * Connect and response-header timeout of plan, credential and liveness requests, and of the
   * event stream's response headers. Default 5 s.
   */
  requestTimeoutMs?: number;
  /** Failures in a row that open the circuit (default 3) and how long it stays open (1 s). */
  circuit?: { failureThreshold?: number; coolDownMs?: number };
  /**
   * Longest silence tolerated on the event stream before it is treated as dead and reconnected.
   * The control plane sends a heartbeat comment every 15 s. Default 45 s; 0 relies on TCP
   * keep-alive alone.
   */
  eventsIdleTimeoutMs?: number;
  /**
   * Reconnect backoff bounds for the event stream; each wait is between half the bound and the
   * bound. Defaults 100 ms and 1 s: a returning control plane is picked up within about a second,
   * and at most a few connection attempts per second reach a control plane that is down.
   */
  eventsBackoffMs?: { min: number; max: number };
  /**
   * Longest a credential-resolution request holds the slot that resolutions asked for meanwhile
   * wait for (`MAX_RESOLUTION_REQUESTS_IN_FLIGHT`). Default 50 ms.
   */
  resolutionSlotMs?: number;
}

export interface ResolvedCredential {
  value: string;
  expiresAt: Date | null;
  credentialVersion: number | string;
}

/** The control plane refused or failed a request; `code` is its error code when it sent one. */
export class ControlPlaneError extends Error {
  override readonly name = "ControlPlaneError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface EventStream {
  /** Whether the stream is connected and past its `ready` event right now. */
  readonly connected: boolean;
  /** When a stream that had been ready was lost (epoch ms); undefined while connected or before. */
  readonly disconnectedAtMs: number | undefined;
  /** Settles when the stream is ready the first time. */
  readonly firstReady: Promise<void>;
  close(): Promise<void>;
}

export interface ControlPlaneClient {
  /** The plan with this digest, fetched and checked against it (`plan-cache.ts` keeps it). */
  fetchPlan(digest: string): Promise<CompiledRuntimePlan>;
  /**
   * `traceparent` is sent along, so the control plane's audit entry carries the trace id. The
   * resolutions asked for in one event-loop turn travel in one request (`resolve-batch`), each
   * answered or refused on its own; a control plane without that route gets one request each.
   */
  resolveCredential(request: CredentialRequest): Promise<ResolvedCredential>;
  /**
   * Whether sessions are live (at most 1,000 ids per call). `planDigests` names plans this
   * gateway lacks (its new sessions' plans): they come back in the same answer and are kept for
   * the `fetchPlan` that follows, so a new session's liveness and plan cost one request.
   */
  checkSessions(
    sessionIds: readonly string[],
    planDigests?: readonly string[],
  ): Promise<readonly SessionLivenessAnswer[]>;
  /** Consumes the invalidation feed into `hub`, reconnecting with backoff until closed. */
  startEvents(hub: InvalidationHub): EventStream;
  close(): Promise<void>;
}

const credentialResponseSchema = z.object({
  value: z.string().min(1),
  expiresAt: z.iso.datetime({ offset: true }).nullable(),
  credentialVersion: z.union([z.number(), z.string()]),
});

interface LivenessResponse {
  sessions: SessionLivenessAnswer[];
  plans: Readonly<Record<string, unknown>> | undefined;
}

/**
 * A liveness answer: `sessions`, a list of `{ sessionId: string, live: boolean, expiresAt: string
 * | null }` (each copied with these three members only), and `plans`, when present, an object
 * (each plan is checked by `checkedPlan`). Null for anything else. Written out rather than as a
 * zod schema: one answer per liveness request carries ≈ 15 sessions and their plans in a storm,
 * and zod's `safeParse` of it cost a Node 20 gateway ≈ 17 µs of CPU per new session
 * (docs/benchmarks.md, "storm-gw20").
 */
function livenessResponse(body: unknown): LivenessResponse | null {
  if (typeof body !== "object" || body === null) return null;
  const { sessions, plans } = body as { sessions?: unknown; plans?: unknown };
  if (!Array.isArray(sessions)) return null;
  if (
    plans !== undefined &&
    (typeof plans !== "object" || plans === null || Array.isArray(plans))
  ) {
    return null;
  }
  const answers: SessionLivenessAnswer[] = [];
  for (const entry of sessions as unknown[]) {
    if (typeof entry !== "object" || entry === null) return null;
    const { sessionId, live, expiresAt } = entry as Record<string, unknown>;
    if (typeof sessionId !== "string" || typeof live !== "boolean") return null;
    if (expiresAt !== null && typeof expiresAt !== "string") return null;
    answers.push({ sessionId, live, expiresAt });
  }
  return { sessions: answers, plans: plans as Readonly<Record<string, unknown>> | undefined };
}

/** Most plan digests one liveness request names (the control plane accepts 256). */
const MAX_PLANS_PER_LIVENESS = 256;
/**
 * Plans that came with a liveness answer, kept until their `fetchPlan` (which follows within the
 * same few milliseconds): at most one request's worth, oldest out first, since a session that
 * turned out not live never fetches its plan. One pushed out early is fetched by digest instead.
 */
const MAX_PREFETCHED_PLANS = MAX_PLANS_PER_LIVENESS;
/**
 * How long liveness requests go without `plans` after a control plane refused the member (400: a
 * version from before it, during a rolling upgrade); then it is tried again.
 */
const PLANS_REFUSED_BACKOFF_MS = 60_000;

/** Most resolutions in one batch request (the control plane accepts 256). */
const MAX_RESOLUTIONS_PER_BATCH = 256;
/**
 * How long resolutions go one request each after a control plane refused the batch route (a
 * version from before it, during a rolling upgrade: 404, or 413 from its smaller body limit);
 * then the batch is tried again.
 */
const BATCH_REFUSED_BACKOFF_MS = 60_000;
const BATCH_REFUSED_STATUSES: ReadonlySet<number> = new Set([404, 405, 413]);
/**
 * Resolution requests under way at once; resolutions asked for meanwhile wait and travel together
 * (`request-slots.ts`). One: each internal request costs the control plane far more than an item
 * in it (≈ 3 ms of API and PostgreSQL CPU against ≈ 0.1 ms, docs/benchmarks.md), and with a
 * second one under way a storm's arrivals were spread over twice as many requests. The slot is
 * held 50 ms at most, so items waiting on a slow provider (an OAuth2 refresh, a GitHub App token)
 * do not hold back the others for long.
 */
const MAX_RESOLUTION_REQUESTS_IN_FLIGHT = 1;
const DEFAULT_RESOLUTION_SLOT_MS = 50;

const batchResponseSchema = z.object({
  results: z.array(
    z.union([
      credentialResponseSchema.extend({ status: z.literal(200) }),
      z.object({
        status: z.number().int(),
        error: z.object({ code: z.string(), message: z.string().optional() }),
      }),
    ]),
  ),
});

interface CredentialRequest {
  sessionId: string;
  routeId: string;
  traceparent?: string;
}

interface QueuedResolution {
  readonly request: CredentialRequest;
  resolve(credential: ResolvedCredential): void;
  reject(error: unknown): void;
}

const errorResponseSchema = z.object({
  error: z.object({ code: z.string(), message: z.string().optional() }),
});

export function createControlPlaneClient(options: ControlPlaneClientOptions): ControlPlaneClient {
  const base = new URL(options.baseUrl);
  const prefix = base.pathname.replace(/\/+$/, "");
  const timeout = options.requestTimeoutMs ?? 5_000;
  const pool = new Pool(base.origin, {
    connect: { timeout, ...(options.ca ? { ca: [options.ca].flat() } : {}) },
    headersTimeout: timeout,
    bodyTimeout: timeout,
    keepAliveTimeout: 30_000,
  });
  const streams = new Set<EventStream>();
  // Logged when it opens and when it closes again, not at every probe in between.
  let reportedState = "closed";
  const circuit = new Circuit(
    base.origin,
    {
      failureThreshold: options.circuit?.failureThreshold ?? 3,
      windowMs: 30_000,
      coolDownMs: options.circuit?.coolDownMs ?? 1_000,
    },
    options.clock,
    (_origin, state) => {
      if (state === "half_open" || state === reportedState) return;
      reportedState = state;
      options.logger.warn(`control-plane circuit ${state}`);
    },
  );

  // The key is imported once: a fresh assertion per request (they are single use) stays cheap.
  const assertions = createGatewayAssertionSigner({
    ...options.identity,
    audience: options.audience,
    clock: options.clock,
  });

  function authorization(): Promise<string> {
    return assertions.sign().then((assertion) => `Bearer ${assertion}`);
  }

  async function requestJson(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    traceparent?: string,
  ): Promise<unknown> {
    const headers = ["authorization", await authorization(), "accept", "application/json"];
    if (body !== undefined) headers.push("content-type", "application/json");
    if (traceparent !== undefined) headers.push("traceparent", traceparent);
    // Admitted last: from here every path gives the circuit a verdict (a probe never hangs).
    try {
      circuit.admit();
    } catch (error) {
      throw new ControlPlaneError(0, "circuit_open", "control plane failing; request not sent", {
        cause: error,
      });
    }
    let response: Awaited<ReturnType<Pool["request"]>>;
    try {
      response = await pool.request({
        method,
        path: prefix + path,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (error) {
      circuit.upstreamFailed();
      throw new ControlPlaneError(0, "unreachable", "control plane unreachable", { cause: error });
    }
    // 503/504: the control plane is up but cannot serve (its database is down or frozen). Any
    // other answer, refusals and 502 `credential_unavailable` included, shows it works.
    if (response.statusCode === 503 || response.statusCode === 504) circuit.upstreamFailed();
    else circuit.upstreamSucceeded();
    let parsed: unknown;
    try {
      parsed = await response.body.json();
    } catch (error) {
      throw new ControlPlaneError(response.statusCode, "bad_response", "unreadable response", {
        cause: error,
      });
    }
    if (response.statusCode !== 200) {
      const failure = errorResponseSchema.safeParse(parsed);
      const code = failure.success ? failure.data.error.code : "http_error";
      throw new ControlPlaneError(
        response.statusCode,
        code,
        `control plane answered ${response.statusCode} (${code})`,
      );
    }
    return parsed;
  }

  /** Plans from liveness answers, checked against their digests, until fetched. */
  const prefetched = new Map<string, CompiledRuntimePlan>();
  let plansRefusedUntilMs = -Infinity;

  async function fetchPlan(digest: string): Promise<CompiledRuntimePlan> {
    const early = prefetched.get(digest);
    if (early !== undefined) {
      prefetched.delete(digest);
      return early;
    }
    const body = await requestJson("GET", `/internal/v1/plans/${encodeURIComponent(digest)}`);
    // The contract answers with the plan itself; a `{ plan }` envelope is accepted too.
    const candidate =
      typeof body === "object" && body !== null && "plan" in body && !("schemaVersion" in body)
        ? body.plan
        : body;
    return checkedPlan(digest, candidate);
  }

  async function resolveOne({
    sessionId,
    routeId,
    traceparent,
  }: CredentialRequest): Promise<ResolvedCredential> {
    const body = await requestJson(
      "POST",
      "/internal/v1/credentials/resolve",
      { sessionId, routeId },
      traceparent,
    );
    const parsed = credentialResponseSchema.safeParse(body);
    if (!parsed.success) {
      throw new ControlPlaneError(200, "bad_response", "invalid credential response");
    }
    return credentialOf(parsed.data);
  }

  /** Resolutions to send: at the end of this event-loop turn, or when a slot frees. */
  const queuedResolutions: QueuedResolution[] = [];
  let batchRefusedUntilMs = -Infinity;
  let resolutionFlushScheduled = false;
  const resolutionSlots = createRequestSlots({
    max: MAX_RESOLUTION_REQUESTS_IN_FLIGHT,
    holdMs: options.resolutionSlotMs ?? DEFAULT_RESOLUTION_SLOT_MS,
    onFree: () => scheduleResolutions(),
  });

  function resolveQueued(queued: QueuedResolution): Promise<void> {
    return resolveOne(queued.request).then(queued.resolve, queued.reject);
  }

  /** Sends the queue after this turn, unless every slot is taken (then a freed slot sends it). */
  function scheduleResolutions(): void {
    if (resolutionFlushScheduled || queuedResolutions.length === 0 || !resolutionSlots.free) {
      return;
    }
    resolutionFlushScheduled = true;
    setImmediate(flushResolutions);
  }

  async function resolveBatch(batch: readonly QueuedResolution[]): Promise<void> {
    let body: unknown;
    try {
      body = await requestJson("POST", "/internal/v1/credentials/resolve-batch", {
        items: batch.map(({ request }) => request),
      });
    } catch (error) {
      // A control plane from before the batch route (a rolling upgrade) does not know it: one
      // request per resolution for a while, and this batch's now. A 400 (an item it would not
      // take) is answered item by item, each with its own refusal.
      if (error instanceof ControlPlaneError) {
        const routeRefused = BATCH_REFUSED_STATUSES.has(error.status);
        if (routeRefused) {
          batchRefusedUntilMs = options.clock.now().getTime() + BATCH_REFUSED_BACKOFF_MS;
          options.logger.warn(
            "control plane refused a batch of credential resolutions; resolving one at a time",
          );
        }
        if (routeRefused || error.status === 400) {
          for (const queued of batch) void resolveQueued(queued);
          return;
        }
      }
      for (const queued of batch) queued.reject(error);
      return;
    }
    const parsed = batchResponseSchema.safeParse(body);
    if (!parsed.success || parsed.data.results.length !== batch.length) {
      const error = new ControlPlaneError(200, "bad_response", "invalid credential response");
      for (const queued of batch) queued.reject(error);
      return;
    }
    parsed.data.results.forEach((result, i) => {
      const queued = batch[i] as QueuedResolution;
      if ("error" in result) {
        const { code } = result.error;
        queued.reject(
          new ControlPlaneError(
            result.status,
            code,
            `control plane answered ${result.status} (${code})`,
          ),
        );
      } else {
        queued.resolve(credentialOf(result));
      }
    });
  }

  function flushResolutions(): void {
    resolutionFlushScheduled = false;
    while (queuedResolutions.length > 0 && resolutionSlots.free) {
      const batch = queuedResolutions.splice(0, MAX_RESOLUTIONS_PER_BATCH);
      const release = resolutionSlots.take();
      // One alone costs the same either way: it keeps the single route (and its trace header).
      const sent =
        batch.length === 1 ? resolveQueued(batch[0] as QueuedResolution) : resolveBatch(batch);
      void sent.finally(release);
    }
  }

  return {
    fetchPlan,

    resolveCredential(request) {
      if (options.clock.now().getTime() < batchRefusedUntilMs) return resolveOne(request);
      return new Promise<ResolvedCredential>((resolve, reject) => {
        queuedResolutions.push({ request, resolve, reject });
        scheduleResolutions();
      });
    },

    async checkSessions(sessionIds, planDigests = []) {
      const nowMs = options.clock.now().getTime();
      let plans =
        nowMs < plansRefusedUntilMs
          ? []
          : [...new Set(planDigests)]
              .filter((digest) => !prefetched.has(digest))
              .slice(0, MAX_PLANS_PER_LIVENESS);
      const path = "/internal/v1/sessions/liveness";
      let body: unknown;
      try {
        body = await requestJson(
          "POST",
          path,
          plans.length === 0 ? { sessionIds } : { sessionIds, plans },
        );
      } catch (error) {
        // A control plane that does not know `plans` yet refuses it: ask as before for a while
        // (the plans are then fetched by digest), so a rolling upgrade keeps serving sessions.
        if (plans.length === 0 || !(error instanceof ControlPlaneError) || error.status !== 400) {
          throw error;
        }
        plansRefusedUntilMs = nowMs + PLANS_REFUSED_BACKOFF_MS;
        options.logger.warn(
          "control plane refused plans in a liveness request; fetching by digest",
        );
        plans = [];
        body = await requestJson("POST", path, { sessionIds });
      }
      const parsed = livenessResponse(body);
      if (parsed === null) {
        throw new ControlPlaneError(200, "bad_response", "invalid liveness response");
      }
      for (const digest of plans) {
        const candidate = Object.hasOwn(parsed.plans ?? {}, digest)
          ? parsed.plans?.[digest]
          : undefined;
        // Absent: `fetchPlan` asks by digest and gets the control plane's own answer (a 404).
        // Invalid: refused like a fetched one, and asked for again by digest.
        if (candidate === undefined) continue;
        let plan: CompiledRuntimePlan;
        try {
          plan = checkedPlan(digest, candidate);
        } catch (error) {
          options.logger.warn("control plane sent an invalid plan with a liveness answer", {
            error: error instanceof ControlPlaneError ? error.code : "invalid_plan",
          });
          continue;
        }
        prefetched.set(digest, plan);
        if (prefetched.size > MAX_PREFETCHED_PLANS) {
          prefetched.delete(prefetched.keys().next().value as string);
        }
      }
      return parsed.sessions;
    },

    startEvents(hub) {
      const stream = startEventStream({
        pool,
        path: `${prefix}/internal/v1/events`,
        authorization,
        hub,
        logger: options.logger,
        idleTimeoutMs: options.eventsIdleTimeoutMs ?? 45_000,
        headersTimeoutMs: timeout,
        backoff: options.eventsBackoffMs ?? { min: 100, max: 1_000 },
        clock: options.clock,
        // A stream that connects shows the control plane is back: no need to wait for a probe.
        onReady: () => circuit.recovered(),
      });
      streams.add(stream);
      return stream;
    },

    async close() {
      await Promise.all([...streams].map((stream) => stream.close()));
      await pool.close();
    },
  };
}

function credentialOf(answer: z.infer<typeof credentialResponseSchema>): ResolvedCredential {
  return {
    value: answer.value,
    expiresAt: answer.expiresAt === null ? null : new Date(answer.expiresAt),
    credentialVersion: answer.credentialVersion,
  };
}

/** A plan from the control plane, validated and held to the digest it was asked for. */
function checkedPlan(digest: string, candidate: unknown): CompiledRuntimePlan {
  const parsed = compiledPlanSchema.safeParse(candidate);
  if (!parsed.success) {
    throw new ControlPlaneError(200, "invalid_plan", "the control plane sent an invalid plan");
  }
  // Plans are content-addressed: a plan that does not hash to the digest asked for is refused.
  if (planDigest(parsed.data) !== digest) {
    throw new ControlPlaneError(200, "digest_mismatch", "plan does not match its digest");
  }
  return parsed.data;
}

interface EventStreamOptions {
  pool: Pool;
  path: string;
  authorization: () => Promise<string>;
  hub: InvalidationHub;
  logger: Logger;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  backoff: { min: number; max: number };
  clock: Clock;
  onReady(): void;
}

/**
 * Reads the feed until closed. On every `ready` (the first event of each connection) the hub is
 * told to resync: events may have been missed while disconnected, so dependent caches are dropped
 * and sessions re-confirmed. So on `resync`, which the control plane sends when it may itself
 * have missed notifications. Caches are deliberately kept while disconnected, so cached
 * credentials keep working through a control-plane outage until they expire.
 */
function startEventStream(options: EventStreamOptions): EventStream {
  const abort = new AbortController();
  let connected = false;
  let disconnectedAtMs: number | undefined;
  let markReady: () => void = () => {};
  const firstReady = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  function onServerEvent(event: ServerSentEvent): void {
    let data: unknown;
    try {
      data = event.data === "" ? {} : JSON.parse(event.data);
    } catch {
      options.logger.warn("control-plane event is not JSON", { event: event.event });
      return;
    }
    const type =
      typeof data === "object" && data !== null && "type" in data ? data.type : undefined;
    if (event.event === "ready" || type === "ready") {
      connected = true;
      disconnectedAtMs = undefined;
      options.onReady();
      options.hub.resync();
      markReady();
      return;
    }
    if (event.event === "resync") {
      options.logger.info("control plane asked for a resync");
      options.hub.resync();
      return;
    }
    const parsed = invalidationEventSchema.safeParse(data);
    if (parsed.success) options.hub.publish(parsed.data);
    else options.logger.debug("control-plane event ignored", { type: String(type) });
  }

  async function consumeOnce(): Promise<void> {
    const response = await options.pool.request({
      method: "GET",
      path: options.path,
      headers: ["authorization", await options.authorization(), "accept", "text/event-stream"],
      signal: abort.signal,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.idleTimeoutMs,
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`event stream answered ${response.statusCode}`);
    }
    const decoder = createSseDecoder();
    response.body.setEncoding("utf8");
    for await (const chunk of response.body) {
      for (const event of decoder.push(String(chunk))) onServerEvent(event);
    }
  }

  const running = (async () => {
    let attempt = 0;
    while (!abort.signal.aborted) {
      try {
        await consumeOnce();
      } catch (error) {
        if (abort.signal.aborted) break;
        options.logger.warn("control-plane event stream failed", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
      if (connected) {
        attempt = 0;
        disconnectedAtMs = options.clock.now().getTime();
      }
      connected = false;
      if (abort.signal.aborted) break;
      const ceiling = Math.min(options.backoff.max, options.backoff.min * 2 ** attempt);
      attempt = Math.min(attempt + 1, 16);
      try {
        // Half fixed, half random: reconnecting gateways do not all arrive at once.
        await sleep(ceiling / 2 + Math.random() * (ceiling / 2), undefined, {
          signal: abort.signal,
        });
      } catch {
        break;
      }
    }
  })();

  return {
    get connected() {
      return connected;
    },
    get disconnectedAtMs() {
      return disconnectedAtMs;
    },
    firstReady,
    async close() {
      abort.abort();
      await running;
    },
  };
}

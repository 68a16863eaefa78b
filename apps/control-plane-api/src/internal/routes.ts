import { createRoute, z } from "@hono/zod-openapi";
import { isDatabaseUnavailable } from "@keyway/db";
import {
  contextOf,
  parseTraceparent,
  remoteContext,
  SpanKind,
  SpanStatusCode,
} from "@keyway/observability";
import { streamSSE } from "hono/streaming";
import { insertAuditEntries, type TimedAuditEntry } from "../audit/service";
import { createCredentialCache } from "../credentials/credential-cache";
import { createOAuth2Tokens } from "../credentials/oauth2-tokens";
import { createDecryptedCredentials } from "../credentials/secret-store";
import type { AppDeps } from "../deps";
import { DomainError, errorOf, notFound } from "../errors";
import type { FeedMessage } from "../events/invalidations";
import { errorLogFields } from "../logger";
import { jsonBodyFromNode } from "../request-body";
import { createRouter, errorResponses } from "../router";
import { sessionLiveness } from "../sessions/service";
import { createStatementBatcher } from "../statement-batcher";
import { createPlanCache } from "./plan-cache";
import { type ResolutionFacts, type ResolutionKey, selectResolutionFacts } from "./queries";
import { RESOLUTION_REFUSALS } from "./refusals";
import {
  type ResolutionDeps,
  type ResolvedRouteCredential,
  resolveRouteCredential,
} from "./resolve-credential";
import {
  compiledPlanDocument,
  planDigestParams,
  resolveCredentialBatchBody,
  resolveCredentialBody,
  resolvedCredentialBatchSchema,
  resolvedCredentialSchema,
  sessionLivenessBody,
  sessionLivenessSchema,
} from "./schemas";

/** Comment lines keep idle event streams open through proxies and let both ends notice a dead peer. */
export const EVENT_STREAM_HEARTBEAT_MS = 15_000;

/** A resolve request is two ids; anything much larger is not a gateway talking. */
const MAX_RESOLVE_BODY_BYTES = 16 * 1024;
/** A batch holds at most 256 items of two ids and a `traceparent` (at most 128 + 512 + 256). */
const MAX_RESOLVE_BATCH_BODY_BYTES = 256 * 1024;
/**
 * A liveness request holds at most 1,000 ids of at most 128 characters and 256 plan digests of
 * 64.
 */
const MAX_LIVENESS_BODY_BYTES = 192 * 1024;

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const gatewayAuth =
  "Gateways authenticate with a fresh client assertion (`Authorization: Bearer <JWT>`).";

/**
 * The internal API for gateways (SPEC §6.3), mounted under `/internal/v1` where the app checks
 * gateway client assertions (single use, so one per request).
 */
export function internalRoutes(deps: AppDeps) {
  const router = createRouter();
  const { db } = deps.database;
  // One per app: plans are immutable, so this cache never needs invalidating.
  const plans = createPlanCache();
  const tokens = createOAuth2Tokens({
    database: deps.database,
    keyRing: deps.keyRing,
    clock: deps.clock,
    fetch: deps.fetch,
    logger: deps.logger,
    tokenRequestTimeoutMs: deps.settings.tokenRequestTimeoutMs,
  });
  // One per app, so concurrent resolutions of one scope on this replica share one mint.
  const credentials = createCredentialCache({
    database: deps.database,
    keyRing: deps.keyRing,
    clock: deps.clock,
  });

  // One per app, so concurrent resolutions' audit entries share a statement and its commit.
  const auditEntries = createStatementBatcher<TimedAuditEntry, void>({
    async run(entries) {
      await insertAuditEntries(deps.database.db, entries);
      return entries.map(() => undefined);
    },
  });

  // One per app, so the reads of concurrent resolutions share a statement and its round trip.
  const facts = createStatementBatcher<ResolutionKey, ResolutionFacts | undefined>({
    run: (keys) => selectResolutionFacts(deps.database.sql, keys),
    // Reads hold no lock: more may run at once than the audit inserts (the pool has 10).
    maxInFlight: 4,
  });

  const resolution: ResolutionDeps = {
    db,
    sql: deps.database.sql,
    keyRing: deps.keyRing,
    registry: deps.registry,
    clock: deps.clock,
    fetch: deps.fetch,
    logger: deps.logger,
    metrics: deps.metrics,
    tracer: deps.tracer,
    tokens,
    credentials,
    // One per app: a version row's ciphertext never changes, so its plaintext is decrypted once.
    decryptedCredentials: createDecryptedCredentials(deps.keyRing),
    auditEntries,
    facts,
  };

  // Bodies are read from Node's request, not through a web `Request` (`request-body.ts`).
  router.use("/internal/v1/credentials/resolve", jsonBodyFromNode(MAX_RESOLVE_BODY_BYTES));
  router.use(
    "/internal/v1/credentials/resolve-batch",
    jsonBodyFromNode(MAX_RESOLVE_BATCH_BODY_BYTES),
  );
  router.use("/internal/v1/sessions/*", jsonBodyFromNode(MAX_LIVENESS_BODY_BYTES));

  router.openapi(
    createRoute({
      method: "post",
      path: "/internal/v1/sessions/liveness",
      tags: ["internal"],
      security,
      description:
        "Whether sessions are live (neither revoked nor past their hard end). Gateways ask on a " +
        "session's first use, after every event-stream reconnect or `resync`, and periodically for " +
        "every session in use, so a lost revocation notice cannot keep a session usable. On a " +
        "session's first use they also name its plan when they lack it (`plans`): the answer " +
        `carries it, so a new session's liveness and plan cost one request. ${gatewayAuth}`,
      request: { body: { ...json(sessionLivenessBody), required: true } },
      responses: {
        200: { description: "One answer per id, in order", ...json(sessionLivenessSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      c.header("cache-control", "no-store");
      const { sessionIds, plans: digests } = c.req.valid("json");
      const [sessions, found] = await Promise.all([
        sessionLiveness(deps.database.sql, deps.clock, sessionIds),
        digests === undefined || digests.length === 0
          ? undefined
          : plans.get(deps.database.sql, digests),
      ]);
      if (found === undefined) return c.json({ sessions }, 200);
      // The plans go out as stored (JSON text), spliced in rather than parsed and serialized again.
      const planMembers = [...found].map(([digest, text]) => `"${digest}":${text}`).join(",");
      c.header("content-type", "application/json");
      return c.body(`{"sessions":${JSON.stringify(sessions)},"plans":{${planMembers}}}`, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/internal/v1/plans/{digest}",
      tags: ["internal"],
      security,
      description: `A compiled plan by digest; immutable, so cacheable forever. ${gatewayAuth}`,
      request: { params: planDigestParams },
      responses: {
        200: { description: "The plan", ...json(compiledPlanDocument) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const { digest } = c.req.valid("param");
      const plan = (await plans.get(deps.database.sql, [digest])).get(digest);
      if (plan === undefined) throw notFound("plan");
      c.header("cache-control", "public, max-age=31536000, immutable");
      c.header("etag", `"${digest}"`);
      c.header("content-type", "application/json");
      return c.body(plan, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/internal/v1/credentials/resolve",
      tags: ["internal"],
      security,
      description:
        "Resolves the credential of one route of a live session's own plan. Every call, " +
        `granted or refused, is audited. Refusal codes: ${Object.keys(RESOLUTION_REFUSALS).join(", ")}. ${gatewayAuth}`,
      request: { body: { ...json(resolveCredentialBody), required: true } },
      responses: {
        200: { description: "The credential", ...json(resolvedCredentialSchema) },
        ...errorResponses,
        409: { description: "The route's connection is not active or its target is disabled" },
        502: { description: "`credential_unavailable`: the provider or stored secret failed" },
      },
    }),
    async (c) => {
      // Set before anything can throw, so refusals are not cached either.
      c.header("cache-control", "no-store");
      const body = c.req.valid("json");
      const resolved = await resolveRouteCredential(resolution, {
        db: c.get("db"),
        sessionId: body.sessionId,
        routeId: body.routeId,
        gatewayId: c.get("gatewayId"),
        requestId: c.get("requestId"),
        traceId: c.get("traceId"),
        traceContext: c.get("traceContext"),
      });
      return c.json(resolvedBody(resolved), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/internal/v1/credentials/resolve-batch",
      tags: ["internal"],
      security,
      description:
        "Several resolutions in one request (a gateway sends those its sandboxes need in one " +
        "event-loop turn): each item is resolved, refused and audited exactly as " +
        "`POST /internal/v1/credentials/resolve` would, under its own `traceparent`, and answered " +
        "in its own result, so one item's refusal leaves the others alone. The whole request " +
        `fails only when the control plane cannot serve at all (503). ${gatewayAuth}`,
      request: { body: { ...json(resolveCredentialBatchBody), required: true } },
      responses: {
        200: {
          description: "One result per item, in order",
          ...json(resolvedCredentialBatchSchema),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      c.header("cache-control", "no-store");
      const { items } = c.req.valid("json");
      const gatewayId = c.get("gatewayId");
      const requestId = c.get("requestId");
      const db = c.get("db");
      const settled = await Promise.allSettled(
        items.map(async (item) => {
          const parent = parseTraceparent(item.traceparent);
          // Each item is its own sandbox request's resolution: a span of its own in that trace.
          const span = deps.tracer?.startSpan(
            "resolve credential",
            { kind: SpanKind.SERVER, attributes: { "keyway.batch_size": items.length } },
            parent === null ? undefined : remoteContext(parent),
          );
          try {
            return await resolveRouteCredential(resolution, {
              db,
              sessionId: item.sessionId,
              routeId: item.routeId,
              gatewayId,
              requestId,
              traceId: span?.spanContext().traceId ?? parent?.traceId,
              traceContext: span === undefined ? undefined : contextOf(span),
            });
          } catch (error) {
            span?.setStatus({
              code: SpanStatusCode.ERROR,
              message: error instanceof DomainError ? error.code : "error",
            });
            throw error;
          } finally {
            span?.end();
          }
        }),
      );
      const results = settled.map((outcome) => {
        if (outcome.status === "fulfilled") {
          return { status: 200 as const, ...resolvedBody(outcome.value) };
        }
        const error: unknown = outcome.reason;
        // The database is down for every item alike: the whole request answers 503.
        if (isDatabaseUnavailable(error)) throw error;
        if (!(error instanceof DomainError)) {
          deps.logger.error("unhandled error", { requestId, ...errorLogFields(error) });
        }
        const { status, body } = errorOf(error, requestId);
        return { status, error: body.error };
      });
      return c.json({ results }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/internal/v1/events",
      tags: ["internal"],
      security,
      description:
        "Server-sent events: first `ready`, then one `invalidation` event (JSON data: session " +
        "revoked, connection updated/revoked, credential rotated, target updated/disabled) per " +
        "change, `resync` when this replica may have missed changes (its database notification " +
        "connection was re-established: gateways re-validate what they cached), and a comment " +
        `line every ${EVENT_STREAM_HEARTBEAT_MS / 1000} s. ${gatewayAuth}`,
      responses: {
        200: {
          description: "The event stream",
          content: { "text/event-stream": { schema: z.string() } },
        },
        ...errorResponses,
      },
    }),
    (c) =>
      streamSSE(c, async (stream) => {
        // Writes are chained so events leave in the order they were published.
        let queue: Promise<unknown> = stream.writeSSE({
          event: "ready",
          data: JSON.stringify({ gatewayId: c.get("gatewayId") }),
        });
        const send = (message: FeedMessage) => {
          queue = queue.then(() =>
            message.type === "resync"
              ? stream.writeSSE({ event: "resync", data: "{}" })
              : stream.writeSSE({ event: "invalidation", data: JSON.stringify(message) }),
          );
        };
        const unsubscribe = deps.invalidations.subscribe(send);
        const heartbeat = setInterval(() => {
          queue = queue.then(() => stream.write(": heartbeat\n\n"));
        }, EVENT_STREAM_HEARTBEAT_MS);
        await new Promise<void>((resolve) => {
          const signal = c.req.raw.signal;
          stream.onAbort(resolve);
          if (signal.aborted) resolve();
          else signal.addEventListener("abort", () => resolve(), { once: true });
        });
        clearInterval(heartbeat);
        unsubscribe();
      }),
  );

  return router;
}

/** A resolved credential as both resolution routes answer it. */
function resolvedBody(resolved: ResolvedRouteCredential) {
  return {
    value: resolved.value,
    expiresAt: resolved.expiresAt?.toISOString() ?? null,
    credentialVersion: resolved.credentialVersion,
  };
}

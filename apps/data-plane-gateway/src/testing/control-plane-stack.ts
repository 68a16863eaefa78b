import { type IncomingMessage, Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { createAdaptorServer } from "@hono/node-server";
import { apiModules, createApp } from "@keyway/control-plane-api";
import { writeCredentialVersion } from "@keyway/control-plane-api/credentials/secret-store";
import {
  type InvalidationEvent,
  publishInvalidation,
} from "@keyway/control-plane-api/events/invalidations";
import { seedOrganization, seedTarget } from "@keyway/control-plane-api/internal/fixtures";
import {
  createEphemeralDeps,
  INTERNAL_AUDIENCE,
  SESSION_AUDIENCE,
  SESSION_ISSUER,
  TEST_GATEWAY_ID,
} from "@keyway/control-plane-api/testing/ephemeral-deps";
import { createSessionTokenSigner, type SigningKeyPair } from "@keyway/crypto";
import {
  auditLog,
  compiledPlans,
  createDatabase,
  integrationConnections,
  newId,
  profileBindings,
  profileVersions,
  runMigrations,
  sandboxProfiles,
  sandboxSessions,
} from "@keyway/db";
import { type CompiledRuntimePlan, type EgressRoute, planDigest } from "@keyway/integrations-core";
import { createTracing, type SpanExporter } from "@keyway/observability";
import { createTestDatabase } from "@keyway/test-harness";
import { and, asc, count, eq, inArray, sql } from "drizzle-orm";

/**
 * The real control plane for this package's integration tests: the API app (`createApp` with
 * every module) on a fresh database of the run's PostgreSQL, with fresh keys, served on a
 * loopback port. Plans, connections and sessions are written as rows, so the gateway under test
 * talks to the real internal API — plan lookup, credential resolution with its refusals and
 * audit entries, the NOTIFY-backed event feed — and verifies tokens against the real JWKS.
 */

export const TEST_ISSUER = SESSION_ISSUER;
export const TEST_SESSION_AUDIENCE = SESSION_AUDIENCE;
export const TEST_INTERNAL_AUDIENCE = INTERNAL_AUDIENCE;
export { TEST_GATEWAY_ID };

/** Every route's connection is an API key connection to its own `http-api` target. */
const VARIANT_ID = "http-api";
const METHOD_ID = "api-key";
const CREATED_BY = "gateway-tests";

export interface TestCredential {
  value: string;
  /** Stored as the credential version's expiry, which resolution reports to the gateway. */
  expiresAt?: Date | null;
}

/**
 * A state in which the real control plane refuses to resolve a route: 409 puts the connection in
 * `error` (`connection_not_active`); 502 stores a credential version without the method's secret
 * field (`credential_unavailable`). A later `setCredential` with a value heals either.
 */
export interface CredentialRefusal {
  error: 409 | 502;
}

export interface TestControlPlane {
  url: string;
  /** The key pair the gateway under test must sign its assertions with. */
  gatewayKey: SigningKeyPair;
  /**
   * Stores `plan` under its digest (or under `servedAs`, which it does not hash to) with the rows
   * resolution needs for each route: its connection (an `http-api` target, an active API key
   * connection with the route's connection id) and its binding. Returns the digest.
   */
  addPlan(plan: CompiledRuntimePlan, servedAs?: string): Promise<string>;
  /**
   * Writes a new credential version for the route's connection (before the route's plan is
   * added, it is written when it is). Publishes nothing: tests decide whether the gateway hears
   * of a rotation (`publish`).
   */
  setCredential(routeId: string, credential: TestCredential | CredentialRefusal): Promise<void>;
  /**
   * A session on a plan added before, and its token signed by the control plane's signer. An
   * `expiresAt` in the past gives an expired token (signed with the same key) and no session.
   */
  issueToken(options: { sessionId: string; planDigest: string; expiresAt?: Date }): Promise<string>;
  /**
   * Revokes a session (resolution answers 403 `session_not_live`) and publishes
   * `session.revoked`, unless `publish` is false (an event the gateway never sees).
   */
  revokeSession(sessionId: string, options?: { publish?: boolean }): Promise<void>;
  /** Publishes an invalidation the way the control plane does (PostgreSQL NOTIFY). */
  publish(event: InvalidationEvent): Promise<void>;
  /** Cuts every open event stream (the gateway should reconnect). */
  dropEventStreams(): void;
  /** Credential resolutions answered for a route id, granted or refused (from the audit log). */
  resolutions(routeId: string): Promise<number>;
  /** The trace ids of the route's resolution audit entries, oldest first. */
  resolutionTraceIds(routeId: string): Promise<(string | null)[]>;
  /** Internal API requests refused for a missing, invalid or replayed assertion (401). */
  readonly refusedAssertions: number;
  /** Plans served (`GET /internal/v1/plans/:digest` answered 200), by digest. */
  planFetches(digest: string): number;
  /**
   * Internal API requests answered so far, by `METHOD path` (a plan's digest shown as
   * `{digest}`), the event stream left out.
   */
  internalRequests(): Record<string, number>;
  /** Warnings and errors the control plane logged (to explain a failing test). */
  logs: string[];
  close(): Promise<void>;
}

export async function startTestControlPlane(
  options: {
    /** The control plane's spans go here (traces are off without one). */
    spanExporter?: SpanExporter;
  } = {},
): Promise<TestControlPlane> {
  const testDatabase = await createTestDatabase("gateway");
  await runMigrations(testDatabase.url);
  const database = createDatabase(testDatabase.url, { max: 5 });
  const clock = { now: () => new Date() };
  const logs: string[] = [];
  const keep = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    logs.push(JSON.stringify({ level, msg: message, ...fields }));
  };
  const tracing = createTracing({
    service: "control-plane-api",
    traces: "off",
    ...(options.spanExporter ? { exporter: options.spanExporter } : {}),
  });
  const { deps, signingKey, gatewayKey } = await createEphemeralDeps({
    database,
    clock,
    ...(tracing.tracer ? { tracer: tracing.tracer } : {}),
    logger: { debug: () => {}, info: () => {}, warn: keep("warn"), error: keep("error") },
  });
  // The control plane never signs an already-expired token; tests need one for the gateway's
  // expiry check, so a signer over the same key with a clock a day behind signs it.
  const pastSigner = createSessionTokenSigner({
    keys: [{ privateJwk: signingKey.privateJwk, kid: signingKey.kid }],
    currentKid: signingKey.kid,
    issuer: SESSION_ISSUER,
    audience: SESSION_AUDIENCE,
    clock: { now: () => new Date(Date.now() - 24 * 3600_000) },
  });

  const { db } = database;
  const organizationId = await seedOrganization(db, clock, "Gateway tests");
  const profileId = newId("profile", clock.now());
  await db.insert(sandboxProfiles).values({
    id: profileId,
    organizationId,
    name: "gateway tests",
    createdBy: CREATED_BY,
  });

  const definition = deps.registry.require(VARIANT_ID);
  const method = definition.connectionMethods.find((candidate) => candidate.id === METHOD_ID);
  const methodSecretField = method?.secretFields?.[0];
  if (method === undefined || methodSecretField === undefined) {
    throw new Error(`${VARIANT_ID} has no ${METHOD_ID} method with a secret field`);
  }
  // What resolution injects for an API key: the method's first secret field.
  const secretField: string = methodSecretField;
  const methodKind = method.kind;

  /** Profile version of each digest added, for the sessions issued on it. */
  const digestVersions = new Map<string, string>();
  const versionIds = new Set<string>();
  /** Connection id of each route id seen in a plan. */
  const routeConnections = new Map<string, string>();
  const connectionIds = new Set<string>();
  /** Credentials set before their route's plan was added. */
  const pendingCredentials = new Map<string, TestCredential | CredentialRefusal>();

  // Writes run one at a time, so two calls never race to create the same connection.
  let writes: Promise<unknown> = Promise.resolve();
  function serially<T>(write: () => Promise<T>): Promise<T> {
    const result = writes.then(write);
    writes = result.catch(() => {});
    return result;
  }

  async function ensureProfileVersion(id: string, digest: string): Promise<void> {
    if (versionIds.has(id)) return;
    await db.insert(profileVersions).values({
      id,
      profileId,
      organizationId,
      version: versionIds.size + 1,
      planDigest: digest,
      createdBy: CREATED_BY,
    });
    versionIds.add(id);
  }

  async function ensureConnection(route: EgressRoute, connectionId: string): Promise<void> {
    if (connectionIds.has(connectionId)) return;
    const config = { baseUrl: route.upstream.baseUrl };
    const parsed = definition.targetConfigSchema.safeParse(config);
    if (!parsed.success) {
      throw new Error(`route ${route.id}: ${route.upstream.baseUrl} is no ${VARIANT_ID} base URL`);
    }
    const target = await seedTarget(db, deps, { variantId: VARIANT_ID, config });
    await db.insert(integrationConnections).values({
      id: connectionId,
      organizationId,
      targetId: target.id,
      methodId: METHOD_ID,
      methodKind,
      displayName: `${route.id} connection`,
      status: "active",
      createdBy: CREATED_BY,
    });
    connectionIds.add(connectionId);
  }

  async function writeCredential(
    connectionId: string,
    credential: TestCredential | CredentialRefusal,
  ): Promise<void> {
    const now = clock.now();
    await db.transaction(async (tx) => {
      if ("error" in credential && credential.error === 409) {
        await tx
          .update(integrationConnections)
          .set({ status: "error", lastError: "set by the test", updatedAt: now })
          .where(eq(integrationConnections.id, connectionId));
        return;
      }
      await writeCredentialVersion(tx, deps.keyRing, {
        connectionId,
        organizationId,
        credential: {
          kind: "secret-fields",
          fields: "error" in credential ? {} : { [secretField]: credential.value },
        },
        expiresAt: "error" in credential ? null : (credential.expiresAt ?? null),
        now,
      });
      await tx
        .update(integrationConnections)
        .set({ status: "active", lastError: null, updatedAt: now })
        .where(eq(integrationConnections.id, connectionId));
    });
  }

  const adapted = createAdaptorServer({ fetch: createApp(deps, apiModules).fetch });
  if (!(adapted instanceof Server)) throw new Error("expected a node:http server");
  const server: Server = adapted;
  // Event streams stay open as long as the gateway runs: tracked so that `dropEventStreams` and
  // `close` can cut them, as the control plane's own server does on shutdown.
  const eventStreams = new Set<Duplex>();
  let refusedAssertions = 0;
  const plansServed = new Map<string, number>();
  const internalRequests: Record<string, number> = {};
  let closing: Promise<void> | undefined;
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const path = request.url ?? "";
    if (path.startsWith("/internal/v1/events")) {
      const socket = request.socket;
      if (closing !== undefined) {
        socket.destroy();
        return;
      }
      eventStreams.add(socket);
      response.once("close", () => eventStreams.delete(socket));
    }
    if (path.startsWith("/internal/")) {
      response.once("finish", () => {
        if (response.statusCode === 401) refusedAssertions++;
        if (!path.startsWith("/internal/v1/events")) {
          const route = `${request.method} ${path.split("?")[0]?.replace(/\/plans\/[^/]+$/, "/plans/{digest}")}`;
          internalRequests[route] = (internalRequests[route] ?? 0) + 1;
        }
        const plan = /^\/internal\/v1\/plans\/([^/?]+)/.exec(path)?.[1];
        if (plan !== undefined && response.statusCode === 200) {
          const digest = decodeURIComponent(plan);
          plansServed.set(digest, (plansServed.get(digest) ?? 0) + 1);
        }
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");

  function cutEventStreams(): void {
    for (const socket of eventStreams) socket.destroy();
    eventStreams.clear();
  }

  async function shutDown(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    cutEventStreams();
    server.closeIdleConnections();
    await closed;
    await deps.auditSealer.close();
    await deps.invalidations.close();
    await database.close();
    await testDatabase.drop();
    await tracing.shutdown();
  }

  return {
    url: `http://127.0.0.1:${address.port}`,
    gatewayKey,
    logs,

    addPlan(plan, servedAs) {
      return serially(async () => {
        const digest = servedAs ?? planDigest(plan);
        await db.insert(compiledPlans).values({ digest, plan }).onConflictDoNothing();
        await ensureProfileVersion(plan.profileVersionId, digest);
        for (const route of plan.routes) {
          if (route.credential === undefined) continue;
          const connectionId = route.credential.connectionId;
          await ensureConnection(route, connectionId);
          await db
            .insert(profileBindings)
            .values({
              id: route.bindingId,
              profileVersionId: plan.profileVersionId,
              organizationId,
              connectionId,
              kind: definition.kind,
            })
            .onConflictDoNothing();
          routeConnections.set(route.id, connectionId);
          const pending = pendingCredentials.get(route.id);
          if (pending !== undefined) {
            pendingCredentials.delete(route.id);
            await writeCredential(connectionId, pending);
          }
        }
        digestVersions.set(digest, plan.profileVersionId);
        return digest;
      });
    },

    setCredential(routeId, credential) {
      return serially(async () => {
        const connectionId = routeConnections.get(routeId);
        if (connectionId === undefined) pendingCredentials.set(routeId, credential);
        else await writeCredential(connectionId, credential);
      });
    },

    async issueToken({ sessionId, planDigest: digest, expiresAt }) {
      const now = clock.now();
      const tokenExpiresAt =
        expiresAt ?? new Date(now.getTime() + deps.settings.sessionTokenTtlSeconds * 1000);
      const claims = { sessionId, organizationId, planDigest: digest, expiresAt: tokenExpiresAt };
      if (tokenExpiresAt.getTime() <= now.getTime()) {
        return pastSigner.sign({ ...claims, profileVersionId: digestVersions.get(digest) ?? "" });
      }
      const profileVersionId = digestVersions.get(digest);
      if (profileVersionId === undefined) throw new Error(`no plan was added as ${digest}`);
      const row = {
        id: sessionId,
        organizationId,
        profileId,
        profileVersionId,
        planDigest: digest,
        tokenExpiresAt,
        expiresAt: new Date(now.getTime() + deps.settings.sessionMaxLifetimeSeconds * 1000),
        createdBy: CREATED_BY,
      };
      // Issuing again for a session refreshes its token, as the sessions API does.
      await db
        .insert(sandboxSessions)
        .values(row)
        .onConflictDoUpdate({ target: sandboxSessions.id, set: { tokenExpiresAt } });
      return deps.sessionSigner.sign({ ...claims, profileVersionId });
    },

    async revokeSession(sessionId, options) {
      await db.transaction(async (tx) => {
        await tx
          .update(sandboxSessions)
          .set({ revokedAt: clock.now() })
          .where(eq(sandboxSessions.id, sessionId));
        if (options?.publish !== false) {
          await publishInvalidation(tx, { type: "session.revoked", sessionId });
        }
      });
    },

    publish: (event) => publishInvalidation(db, event),

    dropEventStreams: cutEventStreams,

    async resolutions(routeId) {
      const [row] = await db
        .select({ resolutions: count() })
        .from(auditLog)
        .where(
          and(
            inArray(auditLog.action, ["credential.resolved", "credential.refused"]),
            sql`${auditLog.details}->>'routeId' = ${routeId}`,
          ),
        );
      return row?.resolutions ?? 0;
    },

    async resolutionTraceIds(routeId) {
      const rows = await db
        .select({ traceId: auditLog.traceId })
        .from(auditLog)
        .where(
          and(
            inArray(auditLog.action, ["credential.resolved", "credential.refused"]),
            sql`${auditLog.details}->>'routeId' = ${routeId}`,
          ),
        )
        .orderBy(asc(auditLog.seq));
      return rows.map((row) => row.traceId);
    },

    get refusedAssertions() {
      return refusedAssertions;
    },

    planFetches: (digest) => plansServed.get(digest) ?? 0,

    internalRequests: () => ({ ...internalRequests }),

    close() {
      closing ??= shutDown();
      return closing;
    },
  };
}

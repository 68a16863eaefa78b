/**
 * The real control plane for `pnpm bench:gateway`: an embedded PostgreSQL in a temporary
 * directory (fsync off: the benchmark measures the gateway, whose credentials are cached), the
 * API app with every module and fresh keys, and rows for one organization whose session binds
 * one `http-api` connection per upstream — compiled by the real compiler, so the gateway gets
 * the plan, the JWKS, credential resolution and the heartbeating event feed exactly as deployed.
 * It counts the internal API requests it answers, so a run can say how often the gateway came back
 * for a plan or a credential.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { stringifyConfig } from "@keyway/config";
import type { SigningKeyPair } from "@keyway/crypto";
import {
  createDatabase,
  type DatabaseHandle,
  newId,
  runMigrations,
  sandboxSessions,
} from "@keyway/db";
import type { CompiledRuntimePlan } from "@keyway/integrations-core";
import { startEmbeddedPostgres } from "@keyway/test-harness";
import { createApp } from "../../apps/control-plane-api/src/app";
import { verifyAuditChain } from "../../apps/control-plane-api/src/audit/service";
import { publishInvalidation } from "../../apps/control-plane-api/src/events/invalidations";
import {
  type SeededConnection,
  type SeededSession,
  seedConnection,
  seedOrganization,
  seedSession,
  seedTarget,
} from "../../apps/control-plane-api/src/internal/fixtures";
import { createLogger } from "../../apps/control-plane-api/src/logger";
import { apiModules } from "../../apps/control-plane-api/src/modules";
import {
  createEphemeralDeps,
  INTERNAL_AUDIENCE,
  SESSION_AUDIENCE,
  SESSION_ISSUER,
  TEST_GATEWAY_ID,
} from "../../apps/control-plane-api/src/testing/ephemeral-deps";

/** Sessions spread over plans: session i is on plan i mod `plans`. */
export interface SessionGroup {
  sessions: number;
  plans: number;
}

export interface BenchSessionGroup {
  /** The group's distinct plans (the same routes under each profile version's binding ids). */
  plans: CompiledRuntimePlan[];
  /** One token per session of the group. */
  tokens: string[];
}

export interface BenchControlPlane {
  url: string;
  gatewayId: string;
  gatewayKey: SigningKeyPair;
  sessionIssuer: string;
  sessionAudience: string;
  internalAudience: string;
  /** The first session's compiled plan (one route per upstream, in order). */
  plan: CompiledRuntimePlan;
  /** Every distinct plan of every group. */
  plans: CompiledRuntimePlan[];
  /** A session token on the first plan. */
  token: string;
  /** The tokens of the first group. */
  tokens: string[];
  groups: BenchSessionGroup[];
  /**
   * Internal requests answered: plans fetched by digest, credential resolutions, every internal
   * request but the event stream (`internal`), and of those the liveness requests.
   */
  served(): { plans: number; credentials: number; internal: number; liveness: number };
  /** The control plane's own database handle (queries of the bench itself). */
  sql: DatabaseHandle["sql"];
  /** The embedded PostgreSQL's postmaster (its backends are its children), for CPU figures. */
  postgresPid: number;
  /**
   * Seals the pending audit entries with a checkpoint and verifies every chain (what
   * `keyway audit verify` runs), with the number of `credential.resolved` entries and of those
   * that carry a trace id.
   */
  auditCheck(): Promise<{
    chainOk: boolean;
    checkedEntries: number;
    resolved: number;
    resolvedWithTraceId: number;
  }>;
  /**
   * Publishes `connection.updated` for every connection, as an edit would: gateways drop the
   * credentials they cached and resolve them again on next use.
   */
  refreshCredentials(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The gateway's keyway.toml for a benchmark against this control plane: loopback ports, the
 * deployment CA and the gateway's identity from files, and a rate limit on (as deployed) but far
 * above any benchmark's load, so every request pays for the bucket check and none is refused.
 */
export function benchGatewayConfig(
  cp: BenchControlPlane,
  options: {
    proxyPort: number;
    adminPort: number;
    caCertPath: string;
    caKeyPath: string;
    gatewayKeyPath: string;
  },
): string {
  return stringifyConfig({
    sessions: { issuer: cp.sessionIssuer, audience: cp.sessionAudience },
    internal: { audience: cp.internalAudience },
    log: { level: "info" },
    gateway: {
      host: "127.0.0.1",
      port: options.proxyPort,
      admin_host: "127.0.0.1",
      admin_port: options.adminPort,
      control_plane_url: cp.url,
      ca_cert_path: options.caCertPath,
      ca_key_path: options.caKeyPath,
      identity: { gateway_id: cp.gatewayId, private_key_path: options.gatewayKeyPath },
      rate_limit: { requests_per_second: 10_000_000, burst: 10_000_000 },
    },
  });
}

export async function startBenchControlPlane(options: {
  /** `http-api` base URLs, one binding (and route) each, all with the same bearer secret. */
  baseUrls: readonly string[];
  secret: string;
  tokenTtlSeconds: number;
  /**
   * Groups of sessions binding every connection, each plan its own profile version. Default one
   * session on one plan.
   */
  groups?: readonly SessionGroup[];
  /**
   * PostgreSQL with fsync on, as deployed, for benchmarks whose figures include the control
   * plane's commits (`bench:storm`). Default off: `bench:gateway` measures the gateway.
   */
  durable?: boolean;
  /** Run the audit sealer on this timer, as a deployment does (default: only `auditCheck`). */
  auditSealIntervalMs?: number;
  /** PostgreSQL server settings (e.g. `shared_preload_libraries` for `pg_stat_statements`). */
  postgresSettings?: Record<string, string>;
}): Promise<BenchControlPlane> {
  const root = await mkdtemp(join(tmpdir(), "keyway-bench-cp-"));
  // Run as root, PostgreSQL runs as the `postgres` user, which must reach the data directory.
  await chmod(root, 0o755);
  const postgres = await startEmbeddedPostgres({
    dataDir: join(root, "pg"),
    durable: options.durable ?? false,
    ...(options.postgresSettings ? { settings: options.postgresSettings } : {}),
  });
  await postgres.createDatabase("keyway");
  const url = postgres.url("keyway");
  await runMigrations(url);

  const clock = { now: () => new Date() };
  const database = createDatabase(url, { max: 5 });
  const { deps, gatewayKey } = await createEphemeralDeps({
    database,
    clock,
    logger: createLogger({ level: "warn" }),
    settings: { sessionTokenTtlSeconds: options.tokenTtlSeconds },
    ...(options.auditSealIntervalMs !== undefined
      ? { auditSealIntervalMs: options.auditSealIntervalMs }
      : {}),
  });
  const db = database.db;
  const organizationId = await seedOrganization(db, clock, "Gateway bench");
  const connections: SeededConnection[] = [];
  for (const baseUrl of options.baseUrls) {
    const target = await seedTarget(db, deps, { variantId: "http-api", config: { baseUrl } });
    connections.push(
      await seedConnection(db, deps, {
        organizationId,
        target,
        methodId: "api-key",
        credential: { kind: "secret-fields", fields: { apiKey: options.secret } },
      }),
    );
  }
  const bindings = connections.map((connection) => ({ connection, config: {} }));
  const tokenExpiresAt = new Date(clock.now().getTime() + options.tokenTtlSeconds * 1000);

  const groups: BenchSessionGroup[] = [];
  for (const group of options.groups ?? [{ sessions: 1, plans: 1 }]) {
    if (group.plans < 1 || group.sessions < group.plans) {
      throw new Error("a group needs at least one plan and at least one session per plan");
    }
    // Each plan with its first session, compiled and stored by the fixture.
    const seeded: SeededSession[] = [];
    for (let i = 0; i < group.plans; i++) {
      seeded.push(
        await seedSession(db, deps, {
          organizationId,
          bindings,
          tokenTtlSeconds: options.tokenTtlSeconds,
        }),
      );
    }
    // The other sessions on those profile versions, in bulk.
    const sessions: { sessionId: string; on: SeededSession }[] = [];
    for (let i = 0; i < group.sessions; i++) {
      const on = seeded[i % group.plans]!;
      sessions.push({
        sessionId: i < group.plans ? on.sessionId : newId("session", clock.now()),
        on,
      });
    }
    const extra = sessions.slice(group.plans);
    for (let i = 0; i < extra.length; i += 1000) {
      await db.insert(sandboxSessions).values(
        extra.slice(i, i + 1000).map(({ sessionId, on }) => ({
          id: sessionId,
          organizationId,
          profileId: on.profileId,
          profileVersionId: on.profileVersionId,
          planDigest: on.planDigest,
          tokenExpiresAt,
          expiresAt: new Date(clock.now().getTime() + 24 * 3600_000),
          createdBy: "bench",
        })),
      );
    }
    const tokens: string[] = [];
    for (const { sessionId, on } of sessions) {
      tokens.push(
        await deps.sessionSigner.sign({
          sessionId,
          organizationId,
          planDigest: on.planDigest,
          profileVersionId: on.profileVersionId,
          expiresAt: tokenExpiresAt,
        }),
      );
    }
    groups.push({ plans: seeded.map((session) => session.plan), tokens });
  }
  const plans = groups.flatMap((group) => group.plans);
  const tokens = groups[0]?.tokens ?? [];
  const [plan] = plans;
  const [token] = tokens;
  if (plan === undefined || token === undefined) throw new Error("sessions must be at least 1");

  const counts = { plans: 0, credentials: 0, internal: 0, liveness: 0 };
  // Resolutions answered, granted or refused, whether one per request or several in a batch
  // (`resolve-batch`): counted where the API counts them, not by request path.
  const { resolutions } = deps.metrics;
  const countResolution = resolutions.inc.bind(resolutions);
  resolutions.inc = (...labels) => {
    counts.credentials++;
    countResolution(...labels);
  };
  const app = createApp(deps, apiModules);
  const served = serve({
    fetch(request, env) {
      // The path without parsing the URL: this process's CPU is the API's figure.
      const path = request.url.slice(request.url.indexOf("/", "http://".length));
      if (path.startsWith("/internal/") && path !== "/internal/v1/events") counts.internal++;
      if (path.startsWith("/internal/v1/plans/")) counts.plans++;
      if (path === "/internal/v1/sessions/liveness") counts.liveness++;
      // With Node's request and response (`env`), as `server.ts` serves the app: without them
      // the API reads bodies through a web `Request` built for the purpose (`request-body.ts`),
      // a slower path than a deployment's.
      return app.fetch(request, env);
    },
    hostname: "127.0.0.1",
    port: 0,
  });
  if (!(served instanceof Server)) throw new Error("expected a node:http server");
  const server: Server = served;
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  const { port } = address;

  return {
    url: `http://127.0.0.1:${port}`,
    gatewayId: TEST_GATEWAY_ID,
    gatewayKey,
    sessionIssuer: SESSION_ISSUER,
    sessionAudience: SESSION_AUDIENCE,
    internalAudience: INTERNAL_AUDIENCE,
    plan,
    plans,
    token,
    tokens,
    groups,
    served: () => ({ ...counts }),
    sql: database.sql,
    postgresPid: postgres.pid ?? 0,
    async auditCheck() {
      await deps.auditSealer.sealNow({ checkpoint: true });
      const chain = await verifyAuditChain(db, deps.keyRing);
      const [row] = await database.sql<{ resolved: number; with_trace_id: number }[]>`
        select count(*)::int as resolved, count(trace_id)::int as with_trace_id
        from audit_log where action = 'credential.resolved'`;
      return {
        chainOk: chain.ok,
        checkedEntries: chain.checkedEntries,
        resolved: row?.resolved ?? 0,
        resolvedWithTraceId: row?.with_trace_id ?? 0,
      };
    },
    async refreshCredentials() {
      for (const connection of connections) {
        await publishInvalidation(db, { type: "connection.updated", connectionId: connection.id });
      }
    },
    async close() {
      // Event streams stay open while a gateway runs: cut them so that close() returns.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.auditSealer.close();
      await deps.invalidations.close();
      await database.close();
      await postgres.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

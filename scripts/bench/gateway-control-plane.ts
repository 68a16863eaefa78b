/**
 * The real control plane for `pnpm bench:gateway`: an embedded PostgreSQL in a temporary
 * directory (fsync off: the benchmark measures the gateway, whose credentials are cached), the
 * API app with every module and fresh keys, and rows for one organization whose session binds
 * one `http-api` connection per upstream — compiled by the real compiler, so the gateway gets
 * the plan, the JWKS, credential resolution and the heartbeating event feed exactly as deployed.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import type { SigningKeyPair } from "@keyway/crypto";
import { createDatabase, runMigrations } from "@keyway/db";
import type { CompiledRuntimePlan } from "@keyway/integrations-core";
import { startEmbeddedPostgres } from "@keyway/test-harness";
import { createApp } from "../../apps/control-plane-api/src/app";
import {
  type SeededConnection,
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

export interface BenchControlPlane {
  url: string;
  gatewayId: string;
  gatewayKey: SigningKeyPair;
  sessionIssuer: string;
  sessionAudience: string;
  internalAudience: string;
  /** The first session's compiled plan (one route per upstream, in order). */
  plan: CompiledRuntimePlan;
  /** Every session's plan: the same routes under each session's own binding ids. */
  plans: CompiledRuntimePlan[];
  /** A session token on the first plan. */
  token: string;
  /** One token per session, in the order of `plans`. */
  tokens: string[];
  close(): Promise<void>;
}

export async function startBenchControlPlane(options: {
  /** `http-api` base URLs, one binding (and route) each, all with the same bearer secret. */
  baseUrls: readonly string[];
  secret: string;
  tokenTtlSeconds: number;
  /** Sessions to create, each with its own profile version (and plan) binding every connection. */
  sessions?: number;
}): Promise<BenchControlPlane> {
  const root = await mkdtemp(join(tmpdir(), "keyway-bench-cp-"));
  // Run as root, PostgreSQL runs as the `postgres` user, which must reach the data directory.
  await chmod(root, 0o755);
  const postgres = await startEmbeddedPostgres({ dataDir: join(root, "pg"), durable: false });
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
  const plans: CompiledRuntimePlan[] = [];
  const tokens: string[] = [];
  for (let i = 0; i < (options.sessions ?? 1); i++) {
    const session = await seedSession(db, deps, {
      organizationId,
      bindings: connections.map((connection) => ({ connection, config: {} })),
      tokenTtlSeconds: options.tokenTtlSeconds,
    });
    plans.push(session.plan);
    tokens.push(
      await deps.sessionSigner.sign({
        sessionId: session.sessionId,
        organizationId,
        planDigest: session.planDigest,
        profileVersionId: session.profileVersionId,
        expiresAt: new Date(clock.now().getTime() + options.tokenTtlSeconds * 1000),
      }),
    );
  }
  const [plan] = plans;
  const [token] = tokens;
  if (plan === undefined || token === undefined) throw new Error("sessions must be at least 1");

  const served = serve({
    fetch: createApp(deps, apiModules).fetch,
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
    async close() {
      // Event streams stay open while a gateway runs: cut them so that close() returns.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.invalidations.close();
      await database.close();
      await postgres.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

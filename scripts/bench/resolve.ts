/**
 * Credential resolution benchmark (SPEC §11: "credential resolution on a cache miss: p50 < 10 ms
 * against the local control plane").
 *
 * Starts an embedded PostgreSQL in a temporary directory (durable, as `pnpm start` runs it),
 * migrates, builds the real control-plane app with fresh keys, serves it over HTTP, seeds
 * SESSIONS sessions (each its own OpenAI API-key connection and plan), then resolves credentials
 * the way a gateway does on a cache miss: a fresh signed client assertion and one
 * `POST /internal/v1/credentials/resolve` per request over a keep-alive undici connection, one
 * request at a time. Every resolution does its full work — session check, route from the plan,
 * connection and target checks, credential read and decrypt, audit append in its own transaction.
 * Baseline in the same run: `GET /healthz` over the same connection (the HTTP floor).
 *
 *   pnpm bench:resolve [--json FILE] [--no-fsync]
 *
 * `--no-fsync` runs PostgreSQL without fsync, to show how much of the time is the durable commit
 * of the audit entry.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { signGatewayAssertion } from "@keyway/crypto";
import { createDatabase, runMigrations } from "@keyway/db";
import { startEmbeddedPostgres } from "@keyway/test-harness";
import { Client } from "undici";
import { createApp } from "../../apps/control-plane-api/src/app";
import {
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
  TEST_GATEWAY_ID,
} from "../../apps/control-plane-api/src/testing/ephemeral-deps";
import { jsonOutputPath, machineFacts, percentile, writeJson } from "./bench-lib";

const SESSIONS = 100;
const WARMUP = 300;
const REQUESTS = 2_000;
const TARGET_P50_MS = 10;
const durable = !process.argv.includes("--no-fsync");

interface Stats {
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

function stats(samples: readonly number[]): Stats {
  return {
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

async function main() {
  const jsonFile = jsonOutputPath();
  const root = await mkdtemp(join(tmpdir(), "keyway-bench-resolve-"));
  // Run as root, PostgreSQL runs as the `postgres` user, which must reach the data directory.
  await chmod(root, 0o755);
  const postgres = await startEmbeddedPostgres({ dataDir: join(root, "pg"), durable });
  try {
    await postgres.createDatabase("keyway");
    const url = postgres.url("keyway");
    await runMigrations(url);
    await run(url, jsonFile);
  } finally {
    await postgres.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function run(databaseUrl: string, jsonFile: string | undefined) {
  const clock = { now: () => new Date() };
  const database = createDatabase(databaseUrl, { max: 10 });
  // Formats every access-log line like production, then drops it.
  const logger = createLogger({ level: "info", write: () => {} });
  const { deps, gatewayKey } = await createEphemeralDeps({
    database,
    clock,
    logger,
    settings: { operatorTokenHashes: [], sessionTokenTtlSeconds: 3600, gatewayCaPem: "" },
  });
  const invalidations = deps.invalidations;

  const db = database.db;
  const organizationId = await seedOrganization(db, clock, "Bench");
  const target = await seedTarget(db, deps, { variantId: "openai" });
  const work: { sessionId: string; routeId: string }[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const connection = await seedConnection(db, deps, {
      organizationId,
      target,
      methodId: "api-key",
      credential: { kind: "secret-fields", fields: { apiKey: `sk-bench-${i}-${"x".repeat(40)}` } },
    });
    const session = await seedSession(db, deps, {
      organizationId,
      bindings: [{ connection, config: { model: "gpt-5.2-codex" } }],
      tokenTtlSeconds: 3600,
    });
    work.push({ sessionId: session.sessionId, routeId: session.plan.routes[0]!.id });
  }

  const app = createApp(deps, apiModules);
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new Client(origin, { keepAliveTimeout: 60_000 });

  const assertion = () =>
    signGatewayAssertion({
      gatewayId: TEST_GATEWAY_ID,
      privateJwk: gatewayKey.privateJwk,
      kid: gatewayKey.kid,
      audience: INTERNAL_AUDIENCE,
      clock,
    });

  async function resolveOnce(i: number): Promise<number> {
    const item = work[i % work.length]!;
    const started = performance.now();
    const response = await client.request({
      method: "POST",
      path: "/internal/v1/credentials/resolve",
      headers: {
        authorization: `Bearer ${await assertion()}`,
        "content-type": "application/json",
      },
      body: JSON.stringify(item),
    });
    const body = (await response.body.json()) as { value?: string };
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200 || typeof body.value !== "string") {
      throw new Error(`resolve answered ${response.statusCode}`);
    }
    return elapsed;
  }

  async function healthOnce(): Promise<number> {
    const started = performance.now();
    const response = await client.request({ method: "GET", path: "/healthz" });
    await response.body.text();
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`healthz answered ${response.statusCode}`);
    return elapsed;
  }

  async function signOnce(): Promise<number> {
    const started = performance.now();
    await assertion();
    return performance.now() - started;
  }

  try {
    for (let i = 0; i < WARMUP; i++) {
      await resolveOnce(i);
      await healthOnce();
    }
    // Interleaved, so both see the same machine load over the run.
    const resolveMs: number[] = [];
    const healthMs: number[] = [];
    const signMs: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      resolveMs.push(await resolveOnce(i));
      healthMs.push(await healthOnce());
      signMs.push(await signOnce());
    }
    const resolve = stats(resolveMs);
    const health = stats(healthMs);
    const sign = stats(signMs);
    const figures = {
      sessions: SESSIONS,
      warmup: WARMUP,
      requests: REQUESTS,
      postgres: durable ? "embedded, durable (fsync on)" : "embedded, fsync off",
      resolveMs: resolve,
      healthzMs: health,
      assertionSignMs: sign,
      resolveOverHealthzP50: resolve.p50 / health.p50,
      targetP50Ms: TARGET_P50_MS,
      meetsTarget: resolve.p50 < TARGET_P50_MS,
      ...machineFacts(
        `pnpm bench:resolve${jsonFile ? ` --json ${jsonFile}` : ""}${durable ? "" : " --no-fsync"}`,
      ),
    };
    console.log(`credential resolution benchmark — ${figures.cpu}, node ${figures.node}`);
    const row = (s: Stats) => ({
      "p50 (ms)": s.p50.toFixed(2),
      "p99 (ms)": s.p99.toFixed(2),
      "mean (ms)": s.mean.toFixed(2),
      "min (ms)": s.min.toFixed(2),
      "max (ms)": s.max.toFixed(2),
    });
    console.table({
      "resolve (cache miss, incl. assertion)": row(resolve),
      "GET /healthz (HTTP floor)": row(health),
      "gateway assertion signing": row(sign),
    });
    console.log(
      `${REQUESTS} requests over ${SESSIONS} sessions after ${WARMUP} warm-up; ` +
        `resolve p50 / healthz p50 = ${figures.resolveOverHealthzP50.toFixed(1)}x`,
    );
    console.log(
      `target p50 < ${TARGET_P50_MS} ms: ${figures.meetsTarget ? "met" : "NOT met"} (${resolve.p50.toFixed(2)} ms)`,
    );
    writeJson(jsonFile, figures);
  } finally {
    await client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await invalidations.close();
    await database.close();
  }
}

await main();

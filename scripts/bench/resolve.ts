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
 * connection and target checks, credential read and decrypt, the audit entry committed.
 * Baseline in the same run: `GET /healthz` over the same connection (the HTTP floor).
 *
 *   pnpm bench:resolve [--json FILE] [--no-fsync]
 *   pnpm bench:resolve --concurrency 1,16,64 [--requests N] [--json FILE] [--no-fsync] [--profile FILE]
 *
 * `--no-fsync` runs PostgreSQL without fsync, to show how much of the time is the durable commit
 * of the audit entry.
 *
 * `--concurrency` measures resolutions under load instead (SPEC §11, issue 14: "≥ 500
 * resolutions/s at 64 concurrent, p99 < 100 ms"): for each level, `--requests` (1,000)
 * resolutions, each of a distinct session never resolved before (a gateway's cold credential),
 * sent by that many concurrent clients over as many keep-alive connections: resolutions/s over
 * the level's wall time, and latency percentiles. Each level's connections are opened before it
 * is measured. The API's pool is the configured default (10
 * connections) and the audit sealer runs on its timer as in a deployment; at the end every
 * audit chain must verify. `--profile FILE` writes a CPU profile of this process over the measured
 * levels (not the seeding): summarise it with `tsx scripts/bench/cpuprofile-top.ts FILE`.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { createGatewayAssertionSigner, signGatewayAssertion } from "@keyway/crypto";
import { createDatabase, runMigrations } from "@keyway/db";
import { startEmbeddedPostgres } from "@keyway/test-harness";
import { Client, Pool } from "undici";
import { createApp } from "../../apps/control-plane-api/src/app";
import { DEFAULT_SEAL_INTERVAL_MS } from "../../apps/control-plane-api/src/audit/sealer";
import { verifyAuditChain } from "../../apps/control-plane-api/src/audit/service";
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
import { childPids, cpuMs } from "./processes";

const SESSIONS = 100;
const WARMUP = 300;
const REQUESTS = 2_000;
const TARGET_P50_MS = 10;
const durable = !process.argv.includes("--no-fsync");
const CURVE_TARGET = { concurrency: 64, resolutionsPerSecond: 500, p99Ms: 100 };

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = process.argv[at + 1];
  if (!value || value.startsWith("--")) throw new Error(`${name} needs a value`);
  return value;
}
const levels = flag("--concurrency")
  ?.split(",")
  .map((text) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new Error("--concurrency takes integers ≥ 1");
    return value;
  });
/** `--profile FILE`: a CPU profile of this process over the measured levels only (not seeding). */
const profileFile = flag("--profile");
const requestsPerLevel = Number(flag("--requests") ?? 1000);
if (!Number.isInteger(requestsPerLevel) || requestsPerLevel < 1) {
  throw new Error("--requests takes an integer ≥ 1");
}

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
    if (levels !== undefined) await runCurve(url, jsonFile, levels, postgres.pid ?? 0);
    else await run(url, jsonFile);
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
      bindings: [{ connection, config: { model: "gpt-6.2-sol" } }],
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
    await deps.auditSealer.close();
    await invalidations.close();
    await database.close();
  }
}

/** Resolutions of distinct cold sessions at each concurrency level (`--concurrency`). */
async function runCurve(
  databaseUrl: string,
  jsonFile: string | undefined,
  levels: number[],
  postmasterPid: number,
) {
  const clock = { now: () => new Date() };
  const database = createDatabase(databaseUrl, { max: 10 });
  const logger = createLogger({ level: "info", write: () => {} });
  const { deps, gatewayKey } = await createEphemeralDeps({
    database,
    clock,
    logger,
    settings: { operatorTokenHashes: [], sessionTokenTtlSeconds: 3600, gatewayCaPem: "" },
    auditSealIntervalMs: DEFAULT_SEAL_INTERVAL_MS,
  });
  const db = database.db;
  const organizationId = await seedOrganization(db, clock, "Bench");
  const target = await seedTarget(db, deps, { variantId: "openai" });
  const warmup = 200;
  const total = warmup + levels.length * requestsPerLevel;
  console.log(`seeding ${total} sessions, each with its own connection …`);
  const work: { sessionId: string; routeId: string }[] = [];
  for (let start = 0; start < total; start += 16) {
    const batch = Array.from({ length: Math.min(16, total - start) }, (_, k) => start + k);
    work.push(
      ...(await Promise.all(
        batch.map(async (i) => {
          const connection = await seedConnection(db, deps, {
            organizationId,
            target,
            methodId: "api-key",
            credential: {
              kind: "secret-fields",
              fields: { apiKey: `sk-bench-${i}-${"x".repeat(40)}` },
            },
          });
          const session = await seedSession(db, deps, {
            organizationId,
            bindings: [{ connection, config: { model: "gpt-6.2-sol" } }],
            tokenTtlSeconds: 3600,
          });
          return { sessionId: session.sessionId, routeId: session.plan.routes[0]!.id };
        }),
      )),
    );
  }
  await deps.auditSealer.sealNow();

  const app = createApp(deps, apiModules);
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let next = 0;
  // As a gateway does: its key imported once, a fresh single-use assertion per request.
  const assertions = createGatewayAssertionSigner({
    gatewayId: TEST_GATEWAY_ID,
    privateJwk: gatewayKey.privateJwk,
    kid: gatewayKey.kid,
    audience: INTERNAL_AUDIENCE,
    clock,
  });

  async function resolveWith(pool: Pool): Promise<number> {
    const item = work[next++];
    if (item === undefined) throw new Error("ran out of seeded sessions");
    const started = performance.now();
    const assertion = await assertions.sign();
    const response = await pool.request({
      method: "POST",
      path: "/internal/v1/credentials/resolve",
      headers: { authorization: `Bearer ${assertion}`, "content-type": "application/json" },
      body: JSON.stringify(item),
    });
    const body = (await response.body.json()) as { value?: string };
    if (response.statusCode !== 200 || typeof body.value !== "string") {
      throw new Error(`resolve answered ${response.statusCode}`);
    }
    return performance.now() - started;
  }

  async function level(concurrency: number, requests: number) {
    const pool = new Pool(origin, { connections: concurrency, keepAliveTimeout: 60_000 });
    // The level's connections are opened before it is measured (one `GET /healthz` on each, all
    // at once, so the pool opens one per request): otherwise the first wave of resolutions
    // queues behind the pool's own connection setup — a start-of-level transient that measured
    // the benchmark's client, not resolution.
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        const response = await pool.request({ method: "GET", path: "/healthz" });
        await response.body.dump();
      }),
    );
    const samples: number[] = [];
    let left = requests;
    // CPU time per resolution: less sensitive to a shared machine's load than throughput.
    const postgresPids = () => [postmasterPid, ...childPids(postmasterPid)];
    const cpuBefore = { own: process.cpuUsage(), postgres: cpuMs(postgresPids()) };
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (left > 0) {
          left--;
          samples.push(await resolveWith(pool));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const own = process.cpuUsage(cpuBefore.own);
    const postgresCpuMs = cpuMs(postgresPids()) - cpuBefore.postgres;
    await pool.close();
    return {
      concurrency,
      requests,
      resolutionsPerSecond: requests / seconds,
      /** This process (the API and the clients, one event loop) and PostgreSQL, µs each. */
      cpuUsPerResolution: {
        apiAndClients: (own.user + own.system) / requests,
        postgres: (postgresCpuMs * 1000) / requests,
      },
      latencyMs: stats(samples),
      loadAverage: os.loadavg()[0] ?? 0,
    };
  }

  try {
    await level(16, warmup);
    const profiler = profileFile === undefined ? undefined : new Session();
    if (profiler) {
      profiler.connect();
      await profiler.post("Profiler.enable");
      await profiler.post("Profiler.start");
    }
    const results = [];
    for (const concurrency of levels) {
      results.push(await level(concurrency, requestsPerLevel));
    }
    if (profiler && profileFile) {
      const { profile } = await profiler.post("Profiler.stop");
      await writeFile(profileFile, JSON.stringify(profile));
      profiler.disconnect();
      console.log(`wrote ${profileFile}`);
    }
    await deps.auditSealer.sealNow({ checkpoint: true });
    const chain = await verifyAuditChain(db, deps.keyRing);
    const atTarget = results.find((r) => r.concurrency === CURVE_TARGET.concurrency);
    const figures = {
      postgres: durable ? "embedded, durable (fsync on)" : "embedded, fsync off",
      requestsPerLevel,
      warmup,
      levels: results,
      audit: { chainOk: chain.ok, checkedEntries: chain.checkedEntries },
      target: CURVE_TARGET,
      meetsTarget:
        atTarget === undefined
          ? undefined
          : atTarget.resolutionsPerSecond >= CURVE_TARGET.resolutionsPerSecond &&
            atTarget.latencyMs.p99 < CURVE_TARGET.p99Ms,
      ...machineFacts(["pnpm bench:resolve", ...process.argv.slice(2)].join(" ")),
    };
    console.log(
      `credential resolution under concurrency — ${figures.cpu}, ${figures.cores} cores, ` +
        `node ${figures.node}, ${figures.postgres}`,
    );
    console.table(
      Object.fromEntries(
        results.map((r) => [
          `${r.concurrency} concurrent`,
          {
            "resolutions/s": r.resolutionsPerSecond.toFixed(0),
            "p50 (ms)": r.latencyMs.p50.toFixed(2),
            "p99 (ms)": r.latencyMs.p99.toFixed(2),
            "max (ms)": r.latencyMs.max.toFixed(1),
            "CPU µs API+client": r.cpuUsPerResolution.apiAndClients.toFixed(0),
            "CPU µs PostgreSQL": r.cpuUsPerResolution.postgres.toFixed(0),
            load: r.loadAverage.toFixed(1),
          },
        ]),
      ),
    );
    console.log(
      `${requestsPerLevel} distinct cold sessions per level; audit chains ` +
        `${chain.ok ? "verify" : "BROKEN"} (${chain.checkedEntries} entries)`,
    );
    if (figures.meetsTarget !== undefined) {
      console.log(
        `target ≥ ${CURVE_TARGET.resolutionsPerSecond}/s and p99 < ${CURVE_TARGET.p99Ms} ms at ` +
          `${CURVE_TARGET.concurrency}: ${figures.meetsTarget ? "met" : "NOT met"}`,
      );
    }
    writeJson(jsonFile, figures);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await deps.auditSealer.close();
    await deps.invalidations.close();
    await database.close();
  }
}

await main();

import { setTimeout as sleep } from "node:timers/promises";
import { isDatabaseUnavailable, postgresClient } from "@keyway/db";
import { startTcpProxy, type TcpProxy } from "@keyway/test-harness";
import { sql } from "drizzle-orm";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "./testing/test-app";

/**
 * The API when its database fails (SPEC §10 "database unreachable or frozen"): the app's
 * connections go through a TCP proxy that can refuse them (database down), hold every byte
 * (database frozen: connections accepted, nothing answered), or hold one COMMIT on its way (a
 * database frozen just as the COMMIT arrives). Answers are 503 `service_unavailable` with
 * `Retry-After` within the request deadline, readiness says so, logs name the cause, and
 * nothing commits after its request's deadline.
 */

const REQUEST_TIMEOUT_MS = 1_500;

let t: TestApp;
let proxy: TcpProxy;
let direct: postgres.Sql;
let admin: string;

beforeAll(async () => {
  t = await createTestApp({
    settings: { requestTimeoutMs: REQUEST_TIMEOUT_MS },
    databaseTimeouts: { connectMs: 1_000, statementMs: 10_000, idleInTransactionMs: 15_000 },
    async routeDatabase(url) {
      const parsed = new URL(url);
      proxy = await startTcpProxy(
        { host: parsed.hostname, port: Number(parsed.port) },
        { protocol: "postgres" },
      );
      parsed.port = String(proxy.port);
      return parsed.toString();
    },
  });
  direct = postgresClient(t.databaseUrl, { max: 1, onnotice: () => {} });
  ({ admin } = await t.createOrganization("Outage"));
});

afterAll(async () => {
  await direct?.end();
  await t?.close();
  await proxy?.close();
});

async function profileNamed(name: string): Promise<boolean> {
  const rows = await direct`select 1 from sandbox_profiles where name = ${name}`;
  return rows.length > 0;
}

async function readiness(): Promise<number> {
  return (await t.app.request("/readyz")).status;
}

/** Until the app answers 200 on `/readyz` again (its pool reconnects on demand). */
async function untilReady(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await readiness()) === 200) return;
    await sleep(100);
  }
  throw new Error("the API did not become ready again");
}

describe("database refusing connections", () => {
  it("answers 503 service_unavailable with Retry-After at once, and logs the cause, not the query", async () => {
    await proxy.refuse();
    try {
      const started = performance.now();
      const refused = await t.call("POST", "/v1/sandbox-profiles", admin, { name: "refused" });
      const elapsedMs = performance.now() - started;
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe("service_unavailable");
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
      // A refused connection is known at once: not the request deadline answering.
      expect(elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS);

      expect(await readiness()).toBe(503);
      const health = await t.app.request("/healthz");
      expect(health.status).toBe(200);

      const logged = t.logger.lines.filter((line) => line.includes("database unavailable"));
      expect(logged.length).toBeGreaterThan(0);
      expect(logged.join("\n")).toMatch(
        /"code":"(ECONNREFUSED|ECONNRESET|CONNECTION_CLOSED|CONNECTION_DESTROYED)"/,
      );
      const all = t.logger.lines.join("\n");
      expect(all).not.toContain("Failed query");
      expect(all).not.toContain("params:");
    } finally {
      await proxy.accept();
    }
    await untilReady();
    const created = await t.call("POST", "/v1/sandbox-profiles", admin, { name: "after-refusal" });
    expect(created.status).toBe(201);
  });
});

describe("database connection lost inside a transaction", () => {
  it("fails the transaction with a connection error, and the process lives on", async () => {
    const outcome = await t.deps.database.db
      .transaction(async (tx) => {
        await tx.execute(sql`select 1`);
        await proxy.refuse();
        // The client has seen the connection close before it sends the next statement.
        await sleep(200);
        await tx.execute(sql`select 1`);
      })
      .then(
        () => "committed",
        (error: unknown) => error,
      );
    await proxy.accept();
    expect(isDatabaseUnavailable(outcome)).toBe(true);
    await untilReady();
  });
});

describe("database frozen", () => {
  it("answers 503 within the request deadline, reports not ready, and commits nothing later", async () => {
    proxy.freeze();
    // Thawed well after the deadline whatever the API does, as a frozen server resumes.
    const thawed = sleep(REQUEST_TIMEOUT_MS + 2_000).then(() => proxy.thaw());
    try {
      const started = performance.now();
      const [frozen, ready] = await Promise.all([
        t.call("POST", "/v1/sandbox-profiles", admin, { name: "frozen" }),
        readiness(),
      ]);
      expect(frozen.status).toBe(503);
      expect(frozen.body.error.code).toBe("service_unavailable");
      expect(frozen.headers.get("retry-after")).not.toBeNull();
      expect(performance.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS + 1_000);
      expect(ready).toBe(503);
    } finally {
      await thawed;
    }
    await untilReady();
    await sleep(500);
    expect(await profileNamed("frozen")).toBe(false);
  });

  it("never commits a transaction whose COMMIT reaches the database after the deadline", async () => {
    const held = proxy.holdNextCommit();
    const started = performance.now();
    const answer = t.call("POST", "/v1/sandbox-profiles", admin, { name: "held-commit" });
    await held;
    // The COMMIT left the API before the deadline and reaches the server well after it.
    const released = sleep(REQUEST_TIMEOUT_MS + 1_000).then(() => proxy.releaseCommit());
    const response = await answer;
    const elapsedMs = performance.now() - started;
    await released;
    expect(response.status).toBe(503);
    expect(response.body.error.code).toBe("service_unavailable");
    expect(elapsedMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_000);

    await untilReady();
    await sleep(500);
    expect(await profileNamed("held-commit")).toBe(false);
    // The API works again, and writes what it acknowledges.
    const created = await t.call("POST", "/v1/sandbox-profiles", admin, { name: "after-hold" });
    expect(created.status).toBe(201);
    expect(await profileNamed("after-hold")).toBe(true);
  });
});

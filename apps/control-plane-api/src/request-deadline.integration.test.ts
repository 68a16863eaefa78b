import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DeadlineExceededError, profileVersions, sandboxProfiles } from "@keyway/db";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestScoped, UnboundTransactionError } from "./request-deadline";
import { createTestApp, type TestApp } from "./testing/test-app";

/**
 * The request deadline travels explicitly (`c.var.db`, `DatabaseHandle.bound`), never in
 * `AsyncLocalStorage`: on Node 20 one `AsyncLocalStorage.run` turns on promise hooks for the
 * whole process, and every later await pays for them (docs/benchmarks.md). Routes get a handle
 * that cannot begin a transaction, so a request path that forgets its deadline fails here.
 */

let t: TestApp;

beforeAll(async () => {
  t = await createTestApp();
});

afterAll(async () => {
  await t?.close();
});

/**
 * Whether promise hooks are on in this process: with them, each promise continuation runs under
 * an async id of its own; without them, two continuations in a row share their caller's. (Node 24
 * keeps `AsyncLocalStorage` off promise hooks, so there this answers false either way; Node 20 is
 * where it matters.)
 */
async function promiseHooksOn(): Promise<boolean> {
  const { executionAsyncId } = await import("node:async_hooks");
  await null;
  const first = executionAsyncId();
  await null;
  return executionAsyncId() !== first;
}

describe("no AsyncLocalStorage in the API process", () => {
  it("serving requests (transactions with deadlines included) leaves promise hooks off", async () => {
    expect(await promiseHooksOn()).toBe(false);
    const { admin, member } = await t.createOrganization("Hooks");
    const profile = await t.call("POST", "/v1/sandbox-profiles", admin, { name: "hooks" });
    expect(profile.status).toBe(201);
    expect((await t.call("GET", "/v1/sandbox-profiles", member)).status).toBe(200);
    expect((await t.call("GET", "/v1/sandbox-sessions", member)).status).toBe(200);
    expect((await t.call("GET", "/v1/integration/connections", member)).status).toBe(200);
    expect((await t.app.request("/readyz")).status).toBe(200);
    // A console page (hono/jsx would keep its render context in AsyncLocalStorage).
    const page = await t.app.request("/console/sign-in");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<form");
    expect(await promiseHooksOn()).toBe(false);
  });

  it("nothing in the API, its packages or the scripts imports node:async_hooks", () => {
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const offenders: string[] = [];
    const scan = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
        const path = join(dir, name);
        if (statSync(path).isDirectory()) scan(path);
        else if (/\.(ts|tsx|mts|js|mjs)$/.test(name) && !/\.test\.tsx?$/.test(name)) {
          if (/["'](node:)?async_hooks["']/.test(readFileSync(path, "utf8"))) offenders.push(path);
        }
      }
    };
    for (const dir of ["apps", "packages", "scripts"]) scan(join(root, dir));
    expect(offenders).toEqual([]);
  });
});

describe("transactions of request code carry the request's deadline", () => {
  it("the handle routes are built with cannot begin a transaction", async () => {
    const scoped = requestScoped(t.deps);
    expect(() => scoped.database.db.transaction(async () => {})).toThrow(UnboundTransactionError);
    expect(() => scoped.database.bound(undefined)).toThrow(UnboundTransactionError);
    // Queries other than transactions still work on it.
    const rows = await scoped.database.db.select().from(sandboxProfiles).limit(1);
    expect(Array.isArray(rows)).toBe(true);
  });

  it("a bound view commits before its deadline and never after it", async () => {
    const { id: organizationId } = await t.createOrganization("Bound");
    const now = new Date();
    const insert = (name: string) => ({
      id: `prof_${name}_${Math.random().toString(36).slice(2)}`,
      organizationId,
      name,
      createdBy: "test",
      createdAt: now,
      updatedAt: now,
    });
    const bound = t.deps.database.bound(performance.now() + 5_000);
    await bound.transaction(async (tx) => {
      await tx.insert(sandboxProfiles).values(insert("in-time"));
    });

    // The deadline passes while the transaction's work runs: it rolls back, nothing commits.
    const short = t.deps.database.bound(performance.now() + 200);
    const late = await short
      .transaction(async (tx) => {
        await tx.insert(sandboxProfiles).values(insert("too-late"));
        await new Promise((resolve) => setTimeout(resolve, 400));
      })
      .then(
        () => "committed",
        (error: unknown) => error,
      );
    expect(late).toBeInstanceOf(DeadlineExceededError);

    // Already past: refused before BEGIN.
    expect(() => t.deps.database.bound(performance.now() - 1).transaction(async () => {})).toThrow(
      DeadlineExceededError,
    );

    const names = (
      await t.deps.database.db
        .select({ name: sandboxProfiles.name })
        .from(sandboxProfiles)
        .where(eq(sandboxProfiles.organizationId, organizationId))
    ).map((row) => row.name);
    expect(names).toEqual(["in-time"]);
    // The view is the handle's for everything but transactions.
    expect(await bound.select().from(profileVersions).limit(1)).toBeInstanceOf(Array);
  });
});

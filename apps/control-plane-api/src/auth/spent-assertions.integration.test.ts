import { setTimeout as sleep } from "node:timers/promises";
import { spentGatewayAssertions } from "@keyway/db";
import { count } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import { SPENT_ASSERTION_PRUNE_INTERVAL_MS } from "./spent-assertions";

/**
 * Gateway assertions are single use across the fleet (SPEC §6.8): two API replicas — two apps
 * with their own dependencies and database pools, one database — share the spent ids, which are
 * pruned once their assertions can no longer verify.
 */
const clock = createTestClock();
let a: TestApp;
let b: TestApp["app"];

beforeAll(async () => {
  a = await createTestApp({ clock });
  b = (await a.createReplica()).app;
});

afterAll(() => a?.close());

/** `POST /internal/v1/sessions/liveness` on `app` with `assertion`; the status. */
async function liveness(app: { request: TestApp["app"]["request"] }, assertion: string) {
  const response = await app.request("/internal/v1/sessions/liveness", {
    method: "POST",
    headers: { authorization: `Bearer ${assertion}`, "content-type": "application/json" },
    body: JSON.stringify({ sessionIds: ["sess_unknown"] }),
  });
  await response.text();
  return response.status;
}

const spentRows = async () =>
  (await a.deps.database.db.select({ n: count() }).from(spentGatewayAssertions))[0]?.n ?? 0;

describe("gateway assertions across control-plane replicas", () => {
  it("refuses at replica B an assertion replica A accepted, and the other way round", async () => {
    const first = await a.gatewayAssertion();
    expect(await liveness(a.app, first)).toBe(200);
    expect(await liveness(b, first)).toBe(401);
    expect(await liveness(a.app, first)).toBe(401);

    const second = await a.gatewayAssertion();
    expect(await liveness(b, second)).toBe(200);
    expect(await liveness(a.app, second)).toBe(401);
  });

  it("accepts one of many concurrent uses of an assertion, whichever replica they reach", async () => {
    const assertion = await a.gatewayAssertion();
    const statuses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => liveness(i % 2 === 0 ? a.app : b, assertion)),
    );
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 401)).toHaveLength(11);
  });

  it("deletes spent ids once their assertions are past expiry, and keeps the others", async () => {
    await a.deps.database.db.delete(spentGatewayAssertions);
    for (let i = 0; i < 3; i++) expect(await liveness(a.app, await a.gatewayAssertion())).toBe(200);
    expect(await spentRows()).toBe(3);

    // Past those assertions' lifetime (60 s) and clock tolerance, and past the prune interval of
    // both replicas: the next claim on either starts a prune that removes the three.
    clock.advance(Math.max(70_000, SPENT_ASSERTION_PRUNE_INTERVAL_MS + 1_000));
    const fresh = await a.gatewayAssertion();
    expect(await liveness(b, fresh)).toBe(200);
    const deadline = performance.now() + 10_000;
    while ((await spentRows()) !== 1 && performance.now() < deadline) await sleep(20);
    expect(await spentRows()).toBe(1);
    // The one kept is the fresh assertion's: its replay is still refused.
    expect(await liveness(a.app, fresh)).toBe(401);
  });
});

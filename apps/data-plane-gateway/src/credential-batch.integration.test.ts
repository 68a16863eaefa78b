import { createLogger } from "@keyway/observability";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type ControlPlaneClient,
  ControlPlaneError,
  createControlPlaneClient,
} from "./control-plane-client";
import {
  startTestControlPlane,
  TEST_GATEWAY_ID,
  TEST_INTERNAL_AUDIENCE,
  type TestControlPlane,
} from "./testing/control-plane-stack";
import { testPlan, testRoute } from "./testing/fixtures";

/**
 * Credential resolutions asked for in one event-loop turn travel to the real control plane in
 * one request (`POST /internal/v1/credentials/resolve-batch`, issue 14): each keeps its own
 * answer or refusal code and its own trace id in the audit log.
 */

const quiet = createLogger({ level: "error", write: () => {} });
const header = { type: "header", name: "x-key" } as const;

let cp: TestControlPlane;
let client: ControlPlaneClient;

beforeAll(async () => {
  cp = await startTestControlPlane();
  client = createControlPlaneClient({
    baseUrl: cp.url,
    identity: {
      gatewayId: TEST_GATEWAY_ID,
      privateJwk: cp.gatewayKey.privateJwk,
      kid: cp.gatewayKey.kid,
    },
    audience: TEST_INTERNAL_AUDIENCE,
    clock: { now: () => new Date() },
    logger: quiet,
  });
});

afterAll(async () => {
  await client?.close();
  await cp?.close();
});

/** A session on a plan of its own with one route per id, each with `value` stored. */
async function session(sessionId: string, routeIds: string[]) {
  const plan = testPlan(
    routeIds.map((id) =>
      testRoute(id, `${id.replaceAll("_", "-")}.example.test`, "https://upstream.test", header),
    ),
  );
  for (const id of routeIds) await cp.setCredential(id, { value: `sk-${id}` });
  const digest = await cp.addPlan(plan);
  await cp.issueToken({ sessionId, planDigest: digest });
}

const traceparent = (i: number) => `00-${String(i).padStart(32, "e")}-${"f".repeat(16)}-01`;

async function internalRequestsDuring<T>(run: () => Promise<T>) {
  const before = cp.internalRequests();
  const result = await run();
  const after = cp.internalRequests();
  const made: Record<string, number> = {};
  for (const [route, n] of Object.entries(after)) {
    if (n !== (before[route] ?? 0)) made[route] = n - (before[route] ?? 0);
  }
  return { result, made };
}

it("sends the resolutions of one turn in one request, each answered and audited on its own", async () => {
  await session("sess_batch_ok", ["rb_ok_1", "rb_ok_2"]);
  await session("sess_batch_revoked", ["rb_revoked"]);
  await session("sess_batch_broken", ["rb_broken"]);
  await cp.revokeSession("sess_batch_revoked", { publish: false });
  await cp.setCredential("rb_broken", { error: 409 });
  const asks = [
    { sessionId: "sess_batch_ok", routeId: "rb_ok_1" },
    { sessionId: "sess_batch_ok", routeId: "rb_ok_2" },
    { sessionId: "sess_batch_revoked", routeId: "rb_revoked" },
    { sessionId: "sess_batch_broken", routeId: "rb_broken" },
    // A route of another session's plan.
    { sessionId: "sess_batch_ok", routeId: "rb_broken" },
  ].map((ask, i) => ({ ...ask, traceparent: traceparent(i + 1) }));

  const { result: outcomes, made } = await internalRequestsDuring(() =>
    Promise.allSettled(asks.map((ask) => client.resolveCredential(ask))),
  );

  expect(made).toEqual({ "POST /internal/v1/credentials/resolve-batch": 1 });
  expect(outcomes[0]).toMatchObject({ status: "fulfilled", value: { value: "sk-rb_ok_1" } });
  expect(outcomes[1]).toMatchObject({ status: "fulfilled", value: { value: "sk-rb_ok_2" } });
  const refusals = outcomes.slice(2).map((outcome) => {
    expect(outcome.status).toBe("rejected");
    const error = (outcome as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(ControlPlaneError);
    return [error.status, error.code];
  });
  // The same statuses and codes as `POST .../resolve` answers one at a time.
  expect(refusals).toEqual([
    [403, "session_not_live"],
    [409, "connection_not_active"],
    [403, "route_not_in_plan"],
  ]);
  // Each resolution's audit entry carries its own sandbox request's trace id.
  expect(await cp.resolutionTraceIds("rb_ok_1")).toEqual([traceparent(1).slice(3, 35)]);
  expect(await cp.resolutionTraceIds("rb_ok_2")).toEqual([traceparent(2).slice(3, 35)]);
  expect(await cp.resolutionTraceIds("rb_revoked")).toEqual([traceparent(3).slice(3, 35)]);
  expect(await cp.resolutionTraceIds("rb_broken")).toEqual([
    traceparent(4).slice(3, 35),
    traceparent(5).slice(3, 35),
  ]);
  // One assertion for the whole batch, accepted.
  expect(cp.refusedAssertions).toBe(0);
});

it("sends a resolution alone in its turn through the single route", async () => {
  await session("sess_single", ["rb_single"]);
  const { result, made } = await internalRequestsDuring(() =>
    client.resolveCredential({ sessionId: "sess_single", routeId: "rb_single" }),
  );
  expect(result.value).toBe("sk-rb_single");
  expect(made).toEqual({ "POST /internal/v1/credentials/resolve": 1 });
});

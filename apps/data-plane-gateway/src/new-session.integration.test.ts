import {
  createTestCa,
  type RunningServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { ProxyAgent, request } from "undici";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { type ReceivedRequest, recordingUpstream, testPlan, testRoute } from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * What a sandbox's first request costs the control plane (issue 14, the first-request storm):
 * its liveness and, when this gateway lacks it, its plan in one internal request, then its
 * credential — two in all, where liveness, plan and credential used to take three.
 */

const SECRET = "sk-new-session-0123456789";

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let upstream: RunningServer;
let gw: TestGateway;
const received: ReceivedRequest[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Keyway Gateway Test CA" });
  upstreamCa = await createTestCa({ commonName: "Upstream Test CA" });
  upstream = await startHttpsServer(recordingUpstream(received), { ca: upstreamCa });
  gw = await startTestGateway({ controlPlane: cp, gatewayCa, upstreamCa });
});

afterAll(async () => {
  await gw?.close();
  await upstream?.close();
  await cp?.close();
});

/** A session on a plan of its own (one route, `routeId`), with its credential stored. */
async function newSession(sessionId: string, routeId: string) {
  const plan = testPlan([
    testRoute(routeId, "api.example.test", upstream.url, {
      type: "bearer",
      name: "authorization",
      scheme: "Bearer",
    }),
  ]);
  await cp.setCredential(routeId, { value: SECRET });
  const digest = await cp.addPlan(plan);
  return { token: await cp.issueToken({ sessionId, planDigest: digest }), digest };
}

async function firstRequest(token: string): Promise<number> {
  const agent = new ProxyAgent({
    uri: gw.proxyUrl,
    token: `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
    requestTls: { ca: gatewayCa.certPem },
  });
  try {
    const response = await request("https://api.example.test/v1/items", { dispatcher: agent });
    await response.body.dump();
    return response.statusCode;
  } finally {
    await agent.close();
  }
}

/** The internal requests made while `run` ran. */
async function internalRequestsDuring(run: () => Promise<void>): Promise<Record<string, number>> {
  const before = cp.internalRequests();
  await run();
  const after = cp.internalRequests();
  const made: Record<string, number> = {};
  for (const [route, n] of Object.entries(after)) {
    if (n !== (before[route] ?? 0)) made[route] = n - (before[route] ?? 0);
  }
  return made;
}

it("asks a new session's liveness and plan in one request, then its credential", async () => {
  const { token, digest } = await newSession("sess_new_1", "r_new_1");
  const made = await internalRequestsDuring(async () => {
    expect(await firstRequest(token)).toBe(200);
  });
  expect(made).toEqual({
    "POST /internal/v1/sessions/liveness": 1,
    "POST /internal/v1/credentials/resolve": 1,
  });
  expect(cp.planFetches(digest)).toBe(0);
  expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
});

it("asks only the liveness of a new session whose plan it already holds", async () => {
  const first = await newSession("sess_shared_1", "r_shared");
  expect(await firstRequest(first.token)).toBe(200);
  const second = await cp.issueToken({ sessionId: "sess_shared_2", planDigest: first.digest });
  const made = await internalRequestsDuring(async () => {
    // The credential is this gateway's already (same plan and route): liveness alone is asked.
    expect(await firstRequest(second)).toBe(200);
  });
  expect(made).toEqual({ "POST /internal/v1/sessions/liveness": 1 });
});

it("refuses a revoked session's first request, its plan never fetched by digest", async () => {
  const { token, digest } = await newSession("sess_revoked", "r_revoked");
  await cp.revokeSession("sess_revoked");
  // undici reports the CONNECT's 407 as an error.
  await expect(firstRequest(token)).rejects.toThrow(/407/);
  expect(cp.planFetches(digest)).toBe(0);
});

import {
  createTestCa,
  getFreePort,
  type RunningServer,
  startHttpServer,
} from "@keyway/test-harness";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { curl, testPlan, testRoute } from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/** What the sandbox gets when the upstream or the plan fails. */

let cp: TestControlPlane;
let silent: RunningServer;
let gw: TestGateway;
let token: string;
let tamperedToken: string;
let goneOrigin: string;

beforeAll(async () => {
  cp = await startTestControlPlane();
  // Accepts requests and never answers.
  silent = await startHttpServer(() => new Promise<void>(() => {}));
  goneOrigin = `http://127.0.0.1:${await getFreePort()}`;
  const routes = [
    testRoute("r_slow", "slow.example.test", silent.url, { type: "none" }),
    testRoute("r_gone", "gone.example.test", goneOrigin, { type: "none" }),
  ];
  token = await cp.issueToken({
    sessionId: "sess_fail",
    planDigest: await cp.addPlan(testPlan(routes)),
  });
  // A plan served under a digest it does not hash to.
  const tampered = await cp.addPlan(testPlan(routes.slice(0, 1)), "0".repeat(64));
  tamperedToken = await cp.issueToken({ sessionId: "sess_tampered", planDigest: tampered });
  gw = await startTestGateway({
    controlPlane: cp,
    gatewayCa: await createTestCa(),
    upstream: { headersTimeoutMs: 300 },
  });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([cp?.close(), silent?.close()]);
});

it("answers 504 upstream_timeout when the upstream does not answer in time", async () => {
  const result = await curl(["--proxy", gw.proxyUrlFor(token), "http://slow.example.test/"]);
  expect(result.status).toBe(504);
  expect(JSON.parse(result.body).error.code).toBe("upstream_timeout");
});

it("answers 502 upstream_unreachable when the upstream refuses connections", async () => {
  const result = await curl(["--proxy", gw.proxyUrlFor(token), "http://gone.example.test/"]);
  expect(result.status).toBe(502);
  expect(JSON.parse(result.body).error.code).toBe("upstream_unreachable");
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  expect(metrics).toContain(
    `keyway_gateway_upstream_errors_total{upstream="${goneOrigin}",code="upstream_unreachable"} 1`,
  );
});

it("refuses a plan that does not match its digest", async () => {
  const result = await curl([
    "--proxy",
    gw.proxyUrlFor(tamperedToken),
    "http://slow.example.test/",
  ]);
  expect(result.status).toBe(502);
  expect(JSON.parse(result.body).error.code).toBe("control_plane_unavailable");
});

it("signs a fresh assertion for every control-plane request", () => {
  expect(cp.refusedAssertions).toBe(0);
});

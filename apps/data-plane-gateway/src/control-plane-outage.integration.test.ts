import { setTimeout as sleep } from "node:timers/promises";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  startTcpProxy,
  type TcpProxy,
  type TestCa,
} from "@keyway/test-harness";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import {
  curl,
  type ReceivedRequest,
  recordingUpstream,
  testPlan,
  testRoute,
} from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * The gateway while its control plane is away (SPEC §7, §10): readiness says whether it can
 * serve (feed connected, or lost less than the liveness outage grace ago), a returning control
 * plane is picked up within about a second, and a black-holed one does not make every request
 * wait for a timeout. The gateway reaches the control plane through a TCP proxy that can refuse
 * connections (control plane down) or hold every byte (control plane frozen or black-holed).
 */

let gatewayCa: TestCa;
let upstream: RunningServer;
const received: ReceivedRequest[] = [];
let cp: TestControlPlane;
let proxy: TcpProxy;
let gw: TestGateway | undefined;
let digest: string;

beforeAll(async () => {
  gatewayCa = await createTestCa();
  upstream = await startHttpServer(recordingUpstream(received));
  return () => upstream.close();
});

beforeEach(async () => {
  cp = await startTestControlPlane();
  const target = new URL(cp.url);
  proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
  digest = await cp.addPlan(
    testPlan([testRoute("r_a", "a.example.test", upstream.url, { type: "header", name: "x-key" })]),
  );
  await cp.setCredential("r_a", { value: "secret-a-1" });
});

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  await proxy.close();
  await cp.close();
});

async function readyz(gateway: TestGateway) {
  const response = await fetch(`${gateway.adminUrl}/readyz`);
  const body = (await response.json()) as { checks: { events: boolean } };
  return { status: response.status, events: body.checks.events };
}

async function get(gateway: TestGateway, token: string) {
  const started = performance.now();
  const result = await curl(["--proxy", gateway.proxyUrlFor(token), "http://a.example.test/"]);
  const code = result.status === 200 ? undefined : JSON.parse(result.body).error.code;
  return { status: result.status, code, elapsedMs: performance.now() - started };
}

describe("readiness during a control-plane outage", () => {
  it("stays ready within the outage grace, serving sessions confirmed before, then stops", async () => {
    const graceMs = 3_000;
    gw = await startTestGateway({
      controlPlane: cp,
      controlPlaneUrl: `http://127.0.0.1:${proxy.port}`,
      gatewayCa,
      liveness: { outageGraceMs: graceMs },
    });
    const token = await cp.issueToken({ sessionId: "sess_grace", planDigest: digest });
    expect((await get(gw, token)).status).toBe(200);

    await proxy.refuse();
    const lostAt = performance.now();
    // The feed is gone, but the gateway can still serve what it confirmed: it stays ready.
    expect(await readyz(gw)).toEqual({ status: 200, events: false });
    expect((await get(gw, token)).status).toBe(200);

    await sleep(Math.max(0, lostAt + graceMs + 500 - performance.now()));
    expect((await readyz(gw)).status).toBe(503);
    expect(await get(gw, token)).toMatchObject({ status: 502, code: "control_plane_unavailable" });

    await proxy.accept();
    for (let i = 0; i < 100 && (await readyz(gw)).status !== 200; i++) await sleep(50);
    expect(await readyz(gw)).toEqual({ status: 200, events: true });
    expect((await get(gw, token)).status).toBe(200);
  });
});

describe("a returning control plane", () => {
  it("is picked up by the event stream within two seconds, however long it was away", async () => {
    gw = await startTestGateway({
      controlPlane: cp,
      controlPlaneUrl: `http://127.0.0.1:${proxy.port}`,
      gatewayCa,
      // The production reconnect schedule, not the test default; a circuit that would stay open
      // long after the control plane's return unless the reconnect closed it.
      client: { eventsBackoffMs: undefined, circuit: { coolDownMs: 60_000 } },
    });
    const newcomer = await cp.issueToken({ sessionId: "sess_after", planDigest: digest });
    await proxy.refuse();
    // Requests that need the control plane fail meanwhile, and open the circuit.
    for (let i = 0; i < 3; i++) {
      expect(await get(gw, newcomer)).toMatchObject({ code: "control_plane_unavailable" });
    }
    // Long enough for an unbounded backoff to have grown well past two seconds.
    await sleep(8_000);
    expect(await readyz(gw)).toEqual({ status: 200, events: false });

    await proxy.accept();
    const back = performance.now();
    while (!(await readyz(gw)).events && performance.now() - back < 15_000) await sleep(20);
    expect((await readyz(gw)).events).toBe(true);
    expect(performance.now() - back).toBeLessThan(2_000);
    // Back means back: the reconnect closed the circuit.
    expect((await get(gw, newcomer)).status).toBe(200);
  });
});

describe("a black-holed control plane", () => {
  it("answers requests that need it at once once a few have timed out", async () => {
    const timeoutMs = 3_000;
    gw = await startTestGateway({
      controlPlane: cp,
      controlPlaneUrl: `http://127.0.0.1:${proxy.port}`,
      gatewayCa,
      // Open long enough that the requests below all find it open (the probe would wait).
      client: { requestTimeoutMs: timeoutMs, circuit: { coolDownMs: 3_000 } },
    });
    const known = await cp.issueToken({ sessionId: "sess_known", planDigest: digest });
    expect((await get(gw, known)).status).toBe(200);
    const newcomers = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) =>
        cp.issueToken({ sessionId: `sess_new_${n}`, planDigest: digest }),
      ),
    );

    proxy.freeze();
    try {
      // Sessions never confirmed are refused (fail closed); the first few wait for the timeout.
      const answers = [];
      for (const token of newcomers) answers.push(await get(gw, token));
      for (const answer of answers) {
        expect(answer).toMatchObject({ status: 502, code: "control_plane_unavailable" });
      }
      // Then the circuit is open: no request waits for a timeout any more.
      for (const answer of answers.slice(3)) expect(answer.elapsedMs).toBeLessThan(timeoutMs / 3);
      // A session confirmed before is still served from cache.
      expect((await get(gw, known)).status).toBe(200);
    } finally {
      proxy.thaw();
    }
    let answer = await get(gw, newcomers[0] ?? "");
    for (let i = 0; i < 100 && answer.status !== 200; i++) {
      await sleep(100);
      answer = await get(gw, newcomers[0] ?? "");
    }
    expect(answer.status).toBe(200);
  });
});

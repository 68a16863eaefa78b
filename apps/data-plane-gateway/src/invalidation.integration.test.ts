import {
  createTestCa,
  type RunningServer,
  startHttpServer,
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
import { exchangeRaw, openTunnel, proxyAuthorization } from "./testing/raw-client";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * The event feed and the control plane's availability: revocation within a second, rotation,
 * cache drop on reconnect, and a control plane that goes away.
 */

let gatewayCa: TestCa;
let upstream: RunningServer;
const received: ReceivedRequest[] = [];
let cp: TestControlPlane;
let gw: TestGateway;
let digest: string;

beforeAll(async () => {
  gatewayCa = await createTestCa();
  upstream = await startHttpServer(recordingUpstream(received));
  return () => upstream.close();
});

beforeEach(async () => {
  cp = await startTestControlPlane();
  digest = await cp.addPlan(
    testPlan([
      testRoute("r_a", "a.example.test", upstream.url, { type: "header", name: "x-key" }),
      testRoute("r_b", "b.example.test", upstream.url, { type: "header", name: "x-key" }),
    ]),
  );
  await cp.setCredential("r_a", { value: "secret-a-1" });
  await cp.setCredential("r_b", { value: "secret-b-1" });
  gw = await startTestGateway({ controlPlane: cp, gatewayCa });
});

afterEach(async () => {
  await gw.close();
  await cp.close();
});

async function get(token: string, url: string) {
  return curl(["--proxy", gw.proxyUrlFor(token), url]);
}

/** Repeats `probe` every 20 ms until it returns true; the elapsed milliseconds. */
async function waitUntil(probe: () => Promise<boolean>, limitMs = 5_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (await probe()) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("condition not reached");
}

describe("session revocation", () => {
  it("refuses a revoked session within one second, and cuts its open tunnels", async () => {
    const token = await cp.issueToken({ sessionId: "sess_rev", planDigest: digest });
    expect((await get(token, "http://a.example.test/")).status).toBe(200);
    const tunnel = await openTunnel({
      port: gw.proxyPort,
      authority: "a.example.test:80",
      proxyAuthorization: proxyAuthorization(token),
    });
    expect(tunnel.status).toBe(200);
    tunnel.socket.resume();
    const keptAlive = await exchangeRaw(
      tunnel.socket,
      "GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n",
      200,
    );
    expect(keptAlive.text).toMatch(/^HTTP\/1\.1 200 /);
    const tunnelClosed = new Promise<number>((resolve) => {
      const started = performance.now();
      tunnel.socket.once("close", () => resolve(performance.now() - started));
    });

    await cp.revokeSession("sess_rev");
    const elapsed = await waitUntil(
      async () => (await get(token, "http://a.example.test/")).status === 407,
    );
    expect(elapsed).toBeLessThan(1_000);
    expect(await tunnelClosed).toBeLessThan(1_000);

    const refused = await get(token, "http://a.example.test/");
    expect(JSON.parse(refused.body).error).toEqual({
      code: "proxy_auth_required",
      message: "session has been revoked",
    });
  });
});

describe("session not live at the control plane", () => {
  it("answers 407 when resolution says so, even if the revocation event was missed", async () => {
    const token = await cp.issueToken({ sessionId: "sess_missed", planDigest: digest });
    expect((await get(token, "http://a.example.test/")).status).toBe(200);
    await cp.revokeSession("sess_missed", { publish: false });
    const result = await get(token, "http://b.example.test/");
    expect(result.status).toBe(407);
    expect(JSON.parse(result.body).error.code).toBe("proxy_auth_required");
  });
});

describe("credential invalidation", () => {
  it("sends the new value after credential.rotated", async () => {
    const token = await cp.issueToken({ sessionId: "sess_rot", planDigest: digest });
    await get(token, "http://a.example.test/");
    expect(received.at(-1)?.headers["x-key"]).toBe("secret-a-1");

    // The second version of the connection's credential.
    await cp.setCredential("r_a", { value: "secret-a-2" });
    // Until the event arrives the cached value is still used.
    await get(token, "http://a.example.test/");
    expect(received.at(-1)?.headers["x-key"]).toBe("secret-a-1");

    await cp.publish({
      type: "credential.rotated",
      connectionId: "conn_r_a",
      credentialVersion: 2,
    });
    await waitUntil(async () => {
      await get(token, "http://a.example.test/");
      return received.at(-1)?.headers["x-key"] === "secret-a-2";
    }, 1_000);
    // Another connection's credential is untouched by the event.
    await get(token, "http://b.example.test/");
    expect(received.at(-1)?.headers["x-key"]).toBe("secret-b-1");
    expect(await cp.resolutions("r_b")).toBe(1);
  });

  it("drops cached credentials when the event stream reconnects", async () => {
    const token = await cp.issueToken({ sessionId: "sess_gap", planDigest: digest });
    await get(token, "http://a.example.test/");
    // A rotation whose event is lost with the connection.
    await cp.setCredential("r_a", { value: "secret-a-3" });
    cp.dropEventStreams();
    await waitUntil(async () => {
      await get(token, "http://a.example.test/");
      return received.at(-1)?.headers["x-key"] === "secret-a-3";
    });
  });
});

describe("control plane unavailable", () => {
  it("keeps cached credentials working and answers 502 credential_unavailable for the rest", async () => {
    const token = await cp.issueToken({ sessionId: "sess_down", planDigest: digest });
    expect((await get(token, "http://a.example.test/")).status).toBe(200);
    await cp.close();

    const cached = await get(token, "http://a.example.test/");
    expect(cached.status).toBe(200);
    expect(received.at(-1)?.headers["x-key"]).toBe("secret-a-1");

    const uncached = await get(token, "http://b.example.test/");
    expect(uncached.status).toBe(502);
    expect(JSON.parse(uncached.body).error.code).toBe("credential_unavailable");

    // It can still serve the sessions it confirmed: ready within the liveness outage grace.
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      ready: true,
      checks: { jwks: true, events: false, withinOutageGrace: true },
    });
  });

  it("answers 502 credential_unavailable when resolution fails", async () => {
    await cp.setCredential("r_b", { error: 502 });
    const token = await cp.issueToken({ sessionId: "sess_fail", planDigest: digest });
    const result = await get(token, "http://b.example.test/");
    expect(result.status).toBe(502);
    expect(JSON.parse(result.body)).toEqual({
      error: { code: "credential_unavailable", message: expect.any(String) },
    });
  });
});

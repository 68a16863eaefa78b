import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import {
  curl,
  type ReceivedRequest,
  recordingUpstream,
  testPlan,
  testRoute,
} from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/** Rate limits, circuit breakers and retries (SPEC §7 "Resilience") through the real gateway. */

let cp: TestControlPlane;
let gatewayCa: TestCa;

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa();
});

afterAll(async () => {
  await cp?.close();
});

async function metricsText(gw: TestGateway): Promise<string> {
  return (await fetch(`${gw.adminUrl}/metrics`)).text();
}

function headerValue(headers: string, name: string): string | undefined {
  const line = headers.split("\r\n").find((l) => l.toLowerCase().startsWith(`${name}:`));
  return line?.slice(name.length + 1).trim();
}

describe("per-route rate limit", () => {
  let upstream: RunningServer;
  let gw: TestGateway;
  let token: string;
  let otherToken: string;
  const received: ReceivedRequest[] = [];

  beforeAll(async () => {
    upstream = await startHttpServer(recordingUpstream(received));
    const routes = [
      testRoute("r_limited", "limited.example.test", upstream.url, { type: "none" }),
      testRoute("r_other", "other.example.test", upstream.url, { type: "none" }),
    ];
    token = await cp.issueToken({
      sessionId: "sess_rl",
      planDigest: await cp.addPlan(testPlan(routes)),
    });
    // A different plan (another digest) has buckets of its own.
    otherToken = await cp.issueToken({
      sessionId: "sess_rl_other",
      planDigest: await cp.addPlan(testPlan(routes.slice(0, 1))),
    });
    // One token per 5 s: the burst is all a test run can spend.
    gw = await startTestGateway({
      controlPlane: cp,
      gatewayCa,
      rateLimit: { requestsPerSecond: 0.2, burst: 3 },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it("answers 429 rate_limited with Retry-After once the burst is spent", async () => {
    const proxy = ["--proxy", gw.proxyUrlFor(token)];
    for (let i = 0; i < 3; i++) {
      expect((await curl([...proxy, `http://limited.example.test/n/${i}`])).status).toBe(200);
    }
    const limited = await curl([...proxy, "http://limited.example.test/n/3"]);
    expect(limited.status).toBe(429);
    expect(JSON.parse(limited.body).error.code).toBe("rate_limited");
    const retryAfter = Number(headerValue(limited.headers, "retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(5);
    expect(received.map((r) => r.url)).toEqual(["/n/0", "/n/1", "/n/2"]);

    // Other routes, and the same route under another plan, keep their own budget.
    expect((await curl([...proxy, "http://other.example.test/"])).status).toBe(200);
    const otherPlan = await curl([
      "--proxy",
      gw.proxyUrlFor(otherToken),
      "http://limited.example.test/",
    ]);
    expect(otherPlan.status).toBe(200);

    const metrics = await metricsText(gw);
    expect(metrics).toContain(`keyway_gateway_rate_limited_total{upstream="${upstream.url}"} 1`);
    expect(metrics).toContain(
      `keyway_gateway_requests_total{upstream="${upstream.url}",status="429"} 1`,
    );
  });
});

describe("circuit breaker and retries", () => {
  const COOL_DOWN_MS = 300;
  let flaky: RunningServer;
  let resetting: RunningServer;
  let gw: TestGateway;
  let token: string;
  /** Requests that reached the flaky upstream. */
  let flakyRequests = 0;
  let flakyFailing = true;
  /** How many of the next requests the resetting upstream answers by destroying the socket. */
  let resetsLeft = 0;
  /** Whether it breaks the connection after sending response headers instead. */
  let resetAfterHeaders = false;
  const received: ReceivedRequest[] = [];
  const record = recordingUpstream(received);

  beforeAll(async () => {
    flaky = await startHttpServer((req: IncomingMessage, res: ServerResponse) => {
      flakyRequests++;
      if (flakyFailing) {
        req.socket.destroy();
        return;
      }
      res.end("ok");
    });
    resetting = await startHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
      if (resetsLeft > 0) {
        resetsLeft--;
        received.push({
          method: req.method ?? "",
          url: `${req.url} (reset)`,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          bodyBytes: 0,
        });
        if (resetAfterHeaders) {
          res.writeHead(200, { "content-length": "1000" });
          res.write("partial");
          setImmediate(() => req.socket.destroy());
        } else {
          req.socket.destroy();
        }
        return;
      }
      await record(req, res);
    });
    const routes = [
      testRoute("r_flaky", "flaky.example.test", flaky.url, { type: "none" }),
      testRoute("r_reset", "reset.example.test", resetting.url, { type: "none" }),
    ];
    token = await cp.issueToken({
      sessionId: "sess_cb",
      planDigest: await cp.addPlan(testPlan(routes)),
    });
    gw = await startTestGateway({
      controlPlane: cp,
      gatewayCa,
      circuitBreaker: { failureThreshold: 3, windowMs: 60_000, coolDownMs: COOL_DOWN_MS },
      upstream: { maxRetries: 1 },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([flaky?.close(), resetting?.close()]);
  });

  it("opens after repeated failures, answers 503 without contacting the upstream, and recovers", async () => {
    const proxy = ["--proxy", gw.proxyUrlFor(token)];
    for (let i = 0; i < 3; i++) {
      const failed = await curl([...proxy, "http://flaky.example.test/"]);
      expect(failed.status).toBe(502);
      expect(JSON.parse(failed.body).error.code).toBe("upstream_unreachable");
    }
    const contacted = flakyRequests;
    const open = await curl([...proxy, "http://flaky.example.test/"]);
    expect(open.status).toBe(503);
    expect(JSON.parse(open.body).error.code).toBe("upstream_circuit_open");
    expect(Number(headerValue(open.headers, "retry-after"))).toBeGreaterThanOrEqual(1);
    expect(flakyRequests).toBe(contacted);

    // The upstream heals; after the cool-down one probe goes through and closes the circuit.
    flakyFailing = false;
    await sleep(COOL_DOWN_MS + 100);
    const probe = await curl([...proxy, "http://flaky.example.test/"]);
    expect(probe.status).toBe(200);
    expect((await curl([...proxy, "http://flaky.example.test/"])).status).toBe(200);

    const origin = new URL(flaky.url).origin;
    const metrics = await metricsText(gw);
    for (const state of ["open", "half_open", "closed"]) {
      expect(metrics).toContain(
        `keyway_gateway_circuit_transitions_total{upstream="${origin}",state="${state}"} 1`,
      );
    }
  });

  it("retries a GET once after the connection is reset before any response", async () => {
    resetsLeft = 1;
    resetAfterHeaders = false;
    received.length = 0;
    const result = await curl(["--proxy", gw.proxyUrlFor(token), "http://reset.example.test/get"]);
    expect(result.status).toBe(200);
    expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /get (reset)", "GET /get"]);
  });

  it("never retries a POST", async () => {
    for (const body of ["payload", ""]) {
      resetsLeft = 1;
      resetAfterHeaders = false;
      received.length = 0;
      const result = await curl([
        "--proxy",
        gw.proxyUrlFor(token),
        "-X",
        "POST",
        "--data-binary",
        body,
        "http://reset.example.test/post",
      ]);
      expect(result.status).toBe(502);
      expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(["POST /post (reset)"]);
    }
  });

  it("never retries once response headers have arrived", async () => {
    resetsLeft = 1;
    resetAfterHeaders = true;
    received.length = 0;
    const result = await curl(["--proxy", gw.proxyUrlFor(token), "http://reset.example.test/half"]);
    expect(result.status).toBe(200);
    expect(result.exitCode).not.toBe(0); // the body was cut short
    expect(received.map((r) => `${r.method} ${r.url}`)).toEqual(["GET /half (reset)"]);
  });
});

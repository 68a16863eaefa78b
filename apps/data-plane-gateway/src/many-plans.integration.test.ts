import { Agent, request } from "node:http";
import { createTestCa, type RunningServer, startHttpServer } from "@keyway/test-harness";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { type ReceivedRequest, recordingUpstream, testPlan } from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * A gateway serving many sandboxes, each on its own plan (one profile version each): more plans
 * than the old fixed-count plan cache held (256). Every session's plan is fetched from the
 * control plane once however the requests interleave, and `/metrics` does not grow with the
 * plans, routes and sessions that pass through.
 */

const PLANS = 300;
const SECRET = "sk-many-plans-0123456789";

let cp: TestControlPlane;
let upstream: RunningServer;
let gw: TestGateway;
const received: ReceivedRequest[] = [];
const sessions: { token: string; digest: string }[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  upstream = await startHttpServer(recordingUpstream(received));
  // Every plan routes the same host through the same connection; the ids are each plan's own.
  await cp.setCredential("r_0", { value: SECRET });
  for (let i = 0; i < PLANS; i++) {
    const plan = {
      ...testPlan([
        {
          id: `r_${i}`,
          bindingId: `b_${i}`,
          match: { hosts: ["api.example.test"], pathPrefixes: ["/v1"] },
          upstream: { baseUrl: upstream.url },
          auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
          credential: { connectionId: "conn_many_plans", secretType: "api_key" },
        },
      ]),
      profileVersionId: `pv_${i}`,
    };
    const digest = await cp.addPlan(plan);
    sessions.push({
      token: await cp.issueToken({ sessionId: `sess_${i}`, planDigest: digest }),
      digest,
    });
  }
  gw = await startTestGateway({ controlPlane: cp, gatewayCa: await createTestCa() });
}, 120_000);

afterAll(async () => {
  await gw?.close();
  await Promise.all([cp?.close(), upstream?.close()]);
});

const agent = new Agent({ keepAlive: true, maxSockets: 8 });
afterAll(() => agent.destroy());

/** A plain-HTTP request through the gateway in absolute form, as `HTTP_PROXY` clients send. */
function get(token: string, through: TestGateway = gw): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: "127.0.0.1",
        port: through.proxyPort,
        path: "http://api.example.test/v1/items",
        headers: {
          host: "api.example.test",
          "proxy-authorization": `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
        },
      },
      (res) => {
        res.resume();
        res.once("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.once("error", reject);
    req.end();
  });
}

/** Each session once, in order, eight at a time. */
async function roundOverSessions(through: TestGateway = gw): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < sessions.length; i += 8) {
    const batch = sessions.slice(i, i + 8);
    statuses.push(...(await Promise.all(batch.map((s) => get(s.token, through)))));
  }
  return statuses;
}

async function metricsText(of: TestGateway = gw): Promise<string> {
  return (await fetch(`${of.adminUrl}/metrics`)).text();
}

it("fetches each session's plan once however requests cycle across more plans than 256", async () => {
  for (let round = 0; round < 3; round++) {
    expect(new Set(await roundOverSessions())).toEqual(new Set([200]));
  }
  // A plan comes with its first session's liveness answer (or, failing that, by digest): never
  // twice, and every one of them once (the gateway's count).
  const fetches = sessions.map((s) => cp.planFetches(s.digest));
  expect(fetches.filter((n) => n > 1)).toEqual([]);
  expect(await metricsText()).toContain(`keyway_gateway_plan_fetches_total{result="ok"} ${PLANS}`);
  expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
}, 120_000);

it("keeps /metrics the same size whatever the number of plans, routes and sessions", async () => {
  // A gateway of its own, that has seen nothing yet.
  const fresh = await startTestGateway({ controlPlane: cp, gatewayCa: await createTestCa() });
  try {
    await checkMetricsStaySmall(fresh);
  } finally {
    await fresh.close();
  }
}, 120_000);

async function checkMetricsStaySmall(fresh: TestGateway): Promise<void> {
  // The gateway's own series: the process metrics (`nodejs_gc_*` gains a series per kind of
  // collection seen) are bounded too, but not fixed from the first scrape.
  const lines = (text: string) =>
    text.split("\n").filter((line) => line.startsWith("keyway_")).length;
  const first = sessions[0]!;
  // One session's requests bring every label value this traffic has (the credential cache's hit
  // and miss, the plan fetch, the upstream's status).
  await get(first.token, fresh);
  await get(first.token, fresh);
  const oneSession = await metricsText(fresh);
  expect(new Set(await roundOverSessions(fresh))).toEqual(new Set([200]));
  const everySession = await metricsText(fresh);
  expect(lines(everySession)).toBe(lines(oneSession));
  for (const { digest } of sessions.slice(0, 3)) expect(everySession).not.toContain(digest);
  expect(everySession).not.toMatch(/r_1\b|sess_1\b/);
}

import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterAll, beforeAll, expect, it } from "vitest";
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
 * Sessions on one plan share its routes, so a credential resolution under way for one session's
 * request is joined by the others' requests for the same route. A refusal that concerns only the
 * session that asked (`session_not_live`: it was revoked, and this gateway missed the notice)
 * must not be handed to the sessions that joined it: a live session refused 407 is a session
 * told it is revoked when it is not (seen once in tests/system/faults.test.ts, right after a
 * PostgreSQL restart cost the control plane its notification connection).
 */

let gatewayCa: TestCa;
let upstream: RunningServer;
const received: ReceivedRequest[] = [];
let cp: TestControlPlane;
let gw: TestGateway;
let held: Awaited<ReturnType<typeof holdingProxy>>;
let digest: string;

/**
 * An HTTP proxy in front of the control plane that can hold credential resolutions: while held,
 * a resolution request waits here (counted) until `release`. Everything else passes at once.
 */
async function holdingProxy(target: string) {
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  let waiting = 0;
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const upstreamRequest = httpRequest(
      `${target}${req.url ?? "/"}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstreamRequest.on("error", () => res.destroy());
    req.pipe(upstreamRequest);
  };
  const server = await startHttpServer(async (req, res) => {
    const gated = gate;
    if (gated !== undefined && (req.url ?? "").startsWith("/internal/v1/credentials/resolve")) {
      waiting++;
      await gated;
      waiting--;
    }
    forward(req, res);
  });
  return {
    url: server.url,
    hold() {
      gate = new Promise<void>((resolve) => {
        open = resolve;
      });
    },
    release() {
      gate = undefined;
      open();
    },
    get waiting() {
      return waiting;
    },
    close: () => server.close(),
  };
}

beforeAll(async () => {
  gatewayCa = await createTestCa();
  upstream = await startHttpServer(recordingUpstream(received));
  cp = await startTestControlPlane();
  digest = await cp.addPlan(
    testPlan([
      testRoute("r_first", "first.example.test", upstream.url, { type: "header", name: "x-key" }),
      testRoute("r_later", "later.example.test", upstream.url, { type: "header", name: "x-key" }),
    ]),
  );
  await cp.setCredential("r_first", { value: "secret-first" });
  await cp.setCredential("r_later", { value: "secret-later" });
  held = await holdingProxy(cp.url);
  gw = await startTestGateway({ controlPlane: cp, controlPlaneUrl: held.url, gatewayCa });
});

afterAll(async () => {
  await gw?.close();
  await held?.close();
  await cp?.close();
  await upstream?.close();
});

async function get(token: string, url: string) {
  const result = await curl(["--proxy", gw.proxyUrlFor(token), url]);
  const code = result.status === 200 ? undefined : JSON.parse(result.body).error.code;
  return { status: result.status, code };
}

/** The gateway's credential cache misses so far (`/metrics`). */
async function cacheMisses(): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const match = /keyway_gateway_credential_cache_total\{result="miss"\} ([0-9]+)/.exec(text);
  return Number(match?.[1] ?? 0);
}

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await probe()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

it("a live session that joined a revoked session's resolution is served, not refused 407", async () => {
  const live = await cp.issueToken({ sessionId: "sess_shared_live", planDigest: digest });
  const gone = await cp.issueToken({ sessionId: "sess_shared_gone", planDigest: digest });
  // Both confirmed live by the control plane (their first requests).
  expect((await get(live, "http://first.example.test/")).status).toBe(200);
  expect((await get(gone, "http://first.example.test/")).status).toBe(200);
  // Revoked without a notice reaching this gateway: it still holds the session confirmed.
  await cp.revokeSession("sess_shared_gone", { publish: false });

  // The revoked session asks first for a route nobody has resolved yet: its resolution is held
  // on its way to the control plane, and the live session's request for that route joins it.
  held.hold();
  const missesBefore = await cacheMisses();
  const goneAnswer = get(gone, "http://later.example.test/");
  await until(() => held.waiting === 1, "the revoked session's resolution");
  const liveAnswer = get(live, "http://later.example.test/");
  await until(async () => (await cacheMisses()) === missesBefore + 2, "the live request");
  held.release();

  expect(await goneAnswer).toEqual({ status: 407, code: "proxy_auth_required" });
  expect(await liveAnswer).toEqual({ status: 200, code: undefined });
  expect(received.at(-1)?.headers["x-key"]).toBe("secret-later");
  // And it stays served: the refusal named the revoked session only.
  expect((await get(live, "http://later.example.test/")).status).toBe(200);
  expect((await get(gone, "http://first.example.test/")).status).toBe(407);
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  curl,
  errorCode,
  type RecordingUpstream,
  type Stack,
  type StartedSession,
  startRecordingUpstream,
  startSessionWith,
  startStack,
} from "./support/stack";

/**
 * The gateway and the control plane as separate processes, the control plane stopped and
 * started again under a running gateway (SPEC §7): a credential the gateway already holds keeps
 * working through the outage; a route whose credential it never resolved gets 502
 * `credential_unavailable`; once the control plane is back, the route works; and a credential
 * rotated through the API reaches the upstream on the gateway's next request.
 */

const CACHED_KEY = "sk-system-cached-1a2b3c";
const UNCACHED_KEY = "sk-system-uncached-4d5e6f";
const ROTATED_KEY = "sk-system-rotated-7a8b9c";

let stack: Stack;
let upstream: RecordingUpstream;
let orgToken: string;
let cachedConnection: string;
let session: StartedSession;

beforeAll(async () => {
  stack = await startStack("outage");
  upstream = await startRecordingUpstream();
  // Two APIs on one upstream host, told apart by path: two routes with their own credentials.
  await createHttpApiTarget(stack, "orders-api", { baseUrl: `${upstream.url}/orders` });
  await createHttpApiTarget(stack, "billing-api", { baseUrl: `${upstream.url}/billing` });
  orgToken = await createOrganization(stack, "Outage Org");
  cachedConnection = await createApiKeyConnection(stack, orgToken, {
    targetKey: "orders-api",
    secrets: { apiKey: CACHED_KEY },
  });
  const uncached = await createApiKeyConnection(stack, orgToken, {
    targetKey: "billing-api",
    secrets: { apiKey: UNCACHED_KEY },
  });
  session = await startSessionWith(stack, orgToken, [
    { connectionId: cachedConnection, kind: "connector" },
    { connectionId: uncached, kind: "connector" },
  ]);
});

afterAll(async () => {
  await upstream?.close();
  await stack?.close();
});

function call(path: string) {
  return curl(["--proxy", session.proxyUrl, `${upstream.url}${path}`]);
}

describe("control plane outage", () => {
  it("keeps cached credentials working, and answers 502 credential_unavailable for the rest", async () => {
    const warm = await call("/orders/1");
    expect(warm.status).toBe(200);
    expect(upstream.last().headers.authorization).toBe(`Bearer ${CACHED_KEY}`);

    await stack.stopControlPlane();
    const health = await fetch(`${stack.apiUrl}/v1/organization`).catch((error: unknown) => error);
    expect(health).toBeInstanceOf(Error);

    const cached = await call("/orders/2");
    expect(cached.status).toBe(200);
    expect(upstream.last().url).toBe("/orders/2");
    expect(upstream.last().headers.authorization).toBe(`Bearer ${CACHED_KEY}`);

    const before = upstream.received.length;
    const uncached = await call("/billing/invoices");
    expect(uncached.status).toBe(502);
    expect(errorCode(uncached.body)).toBe("credential_unavailable");
    expect(upstream.received.length).toBe(before);
  });

  it("serves the uncached route again once the control plane is back", async () => {
    await stack.restartControlPlane();
    const result = await call("/billing/invoices");
    expect(result.status).toBe(200);
    expect(upstream.last().headers.authorization).toBe(`Bearer ${UNCACHED_KEY}`);
  });

  it("injects a credential rotated through the API on the next request", async () => {
    const warm = await call("/orders/3");
    expect(warm.status).toBe(200);
    expect(upstream.last().headers.authorization).toBe(`Bearer ${CACHED_KEY}`);

    await stack.apiOk(orgToken, "POST", `/v1/integration/connections/${cachedConnection}/secret`, {
      secrets: { apiKey: ROTATED_KEY },
    });
    // The rotation reaches the gateway as an invalidation event on its feed (SPEC §6.3: within a
    // second); requests until then may still carry the old value, none after it.
    const rotatedAt = performance.now();
    let seen = CACHED_KEY;
    while (seen !== `Bearer ${ROTATED_KEY}` && performance.now() - rotatedAt < 5_000) {
      const result = await call("/orders/4");
      expect(result.status).toBe(200);
      seen = upstream.last().headers.authorization ?? "";
    }
    expect(seen).toBe(`Bearer ${ROTATED_KEY}`);
    expect(performance.now() - rotatedAt).toBeLessThan(1_000);
    for (let i = 0; i < 3; i++) {
      expect((await call(`/orders/5/${i}`)).status).toBe(200);
      expect(upstream.last().headers.authorization).toBe(`Bearer ${ROTATED_KEY}`);
    }
  });

  it("never lets a credential reach the sandbox or the logs", () => {
    const output = stack.gatewayOutput() + stack.controlPlaneLogs.join("\n");
    for (const key of [CACHED_KEY, UNCACHED_KEY, ROTATED_KEY]) expect(output).not.toContain(key);
  });
});

import {
  createTestApp,
  createTestClock,
  type TestApp,
} from "@keyway/control-plane-api/testing/test-app";
import { getFreePort } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StartedAuthorizationServer,
  startAuthorizationServer,
} from "../../../../../scripts/demo-authorization-server.mjs";
import { createTestWorkerDeps } from "../../testing/test-worker";
import { probeTargetHealth } from "./handler";

/** The target health probe against real servers on loopback: one that answers, one that is gone. */

const clock = createTestClock();
let t: TestApp;
let as: StartedAuthorizationServer;

beforeAll(async () => {
  as = await startAuthorizationServer({ quiet: true, clients: [] });
  t = await createTestApp({ clock });
  const target = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
    targetKey: "local-api",
    variantId: "http-api",
    config: {
      baseUrl: `${as.issuer}/api`,
      oauth2: { authorizationUrl: as.authorizationUrl, tokenUrl: as.tokenUrl, clientId: "keyway" },
    },
  });
  expect(target.status, target.text).toBe(201);
});

afterAll(async () => {
  await t?.close();
  await as?.close();
});

describe("target health probes", () => {
  it("records every endpoint of each enabled target: any HTTP answer is reachable", async () => {
    const closedPort = await getFreePort();
    const down = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
      targetKey: "down-api",
      variantId: "http-api",
      config: { baseUrl: `http://127.0.0.1:${closedPort}/v1` },
    });
    expect(down.status, down.text).toBe(201);
    const worker = createTestWorkerDeps(t);
    await probeTargetHealth(worker);

    const local = await t.call("GET", "/v1/operator/targets/local-api", t.operatorToken);
    expect(local.body.health).toMatchObject({
      status: "healthy",
      checkedAt: clock.now().toISOString(),
    });
    expect(local.body.health.endpoints).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ url: `${as.issuer}/api`, reachable: true, status: 404 }),
        expect.objectContaining({ url: as.authorizationUrl, reachable: true, status: 400 }),
        expect.objectContaining({ url: as.tokenUrl, reachable: true }),
      ]),
    );
    const unreachable = await t.call("GET", "/v1/operator/targets/down-api", t.operatorToken);
    expect(unreachable.body.health).toMatchObject({
      status: "unreachable",
      endpoints: [
        { url: `http://127.0.0.1:${closedPort}/v1`, reachable: false, error: "network_error" },
      ],
    });
  });
});

import { createOAuth2Tokens } from "@keyway/control-plane-api/credentials/oauth2-tokens";
import {
  createTestApp,
  createTestClock,
  type TestApp,
} from "@keyway/control-plane-api/testing/test-app";
import { browseAuthorization } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StartedAuthorizationServer,
  startAuthorizationServer,
} from "../../../../../scripts/demo-authorization-server.mjs";
import { createTestWorkerDeps } from "../../testing/test-worker";
import { refreshExpiringTokens } from "./handler";

/**
 * The proactive OAuth2 refresh against a real authorization server on loopback
 * (`oidc-provider`): tokens expiring within the window are refreshed ahead of time, once even
 * when runs on two replicas overlap.
 */

const PUBLIC_URL = "http://127.0.0.1:8080";
const CALLBACK = `${PUBLIC_URL}/v1/integration/connections/oauth2/callback`;
const clock = createTestClock();
let t: TestApp;
let as: StartedAuthorizationServer;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let connectionId = "";

beforeAll(async () => {
  as = await startAuthorizationServer({
    quiet: true,
    autoApprove: true,
    clients: [{ clientId: "keyway", clientSecret: "keyway-secret", redirectUris: [CALLBACK] }],
  });
  t = await createTestApp({ clock, settings: { publicUrl: PUBLIC_URL } });
  org = await t.createOrganization("Worker org");
  const target = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
    targetKey: "local-api",
    variantId: "http-api",
    config: {
      baseUrl: `${as.issuer}/api`,
      oauth2: {
        authorizationUrl: as.authorizationUrl,
        tokenUrl: as.tokenUrl,
        clientId: "keyway",
        scopes: ["api:read"],
      },
    },
    secrets: { clientSecret: "keyway-secret" },
  });
  expect(target.status, target.text).toBe(201);
  const started = await t.call("POST", "/v1/integration/connections/oauth2/start", org.member, {
    targetKey: "local-api",
    methodId: "oauth2",
    displayName: "Local API",
  });
  const back = new URL(
    (await browseAuthorization(started.body.authorizationUrl, { stopAt: CALLBACK })).url,
  );
  const completed = await t.call("GET", `${back.pathname}${back.search}`, undefined);
  expect(completed.status, completed.text).toBe(200);
  connectionId = completed.body.connection.id;
});

afterAll(async () => {
  await t?.close();
  await as?.close();
});

describe("proactive OAuth2 refresh", () => {
  it("refreshes a token expiring within the window once, even when two runs overlap", async () => {
    const worker = createTestWorkerDeps(t);
    // Two workers (two replicas): each has its own single-flight; the advisory lock joins them.
    const deps = [0, 1].map(() => ({
      ...worker,
      tokens: createOAuth2Tokens({ ...worker, tokenRequestTimeoutMs: 5_000 }),
    }));
    // Nothing is due while the token has more than the window (10 minutes) left.
    expect(await refreshExpiringTokens(deps[0]!)).toMatchObject({ due: 0 });

    clock.advance(3600_000 - 5 * 60_000);
    const before = as.grants().refresh_token ?? 0;
    const runs = await Promise.all(deps.map((d) => refreshExpiringTokens(d)));
    expect(runs.map((run) => run.due)).toEqual([1, 1]);
    expect(runs.reduce((sum, run) => sum + run.refreshed, 0)).toBe(1);
    expect(as.grants().refresh_token).toBe(before + 1);

    const connection = await t.call(
      "GET",
      `/v1/integration/connections/${connectionId}`,
      org.viewer,
    );
    expect(connection.body).toMatchObject({ status: "active", credentialVersion: 2 });
    expect(new Date(connection.body.credentialExpiresAt).getTime()).toBeGreaterThan(
      clock.now().getTime() + 50 * 60_000,
    );
    expect(await refreshExpiringTokens(deps[0]!)).toMatchObject({ due: 0 });
  });
});

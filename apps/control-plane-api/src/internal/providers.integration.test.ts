import { generateKeyPairSync } from "node:crypto";
import { auditLog, connectionCredentials, integrationConnections } from "@keyway/db";
import { asc, eq } from "drizzle-orm";
import { importSPKI, jwtVerify } from "jose";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readCurrentCredential } from "../credentials/secret-store";
import type { FeedMessage } from "../events/invalidations";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import {
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedSession,
  seedTarget,
} from "./fixtures";

/**
 * Credential resolution through providers: OAuth2 refresh, the client credentials grant and the
 * GitHub App installation token resolver. msw stands in for Linear, the example token endpoint
 * and GitHub.
 */

const LINEAR_TOKEN_URL = "https://api.linear.app/oauth/token";
const HTTP_API_TOKEN_URL = "https://auth.example.test/oauth/token";

const server = setupServer();
let t: TestApp;
let organizationId: string;
let linearTarget: SeededTarget;
const events: FeedMessage[] = [];
const clock = createTestClock();

beforeAll(async () => {
  server.listen({ onUnhandledRequest: "error" });
  // Looked up per call so requests go through msw's patched fetch.
  t = await createTestApp({ clock, fetch: (input, init) => globalThis.fetch(input, init) });
  t.deps.invalidations.subscribe((event) => events.push(event));
  const db = t.deps.database.db;
  organizationId = await seedOrganization(db, t.clock);
  linearTarget = await seedTarget(db, t.deps, {
    variantId: "linear",
    config: { clientId: "linear-client-id" },
    secrets: { clientSecret: "linear-client-secret-value" },
  });
});
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await t.close();
});

async function resolve(sessionId: string, routeId: string) {
  return t.call("POST", "/internal/v1/credentials/resolve", await t.gatewayAssertion(), {
    sessionId,
    routeId,
  });
}

async function linearOAuthSession(tokens: {
  accessToken: string;
  refreshToken?: string;
  expiresAt: Date;
}) {
  const connection = await seedConnection(t.deps.database.db, t.deps, {
    organizationId,
    target: linearTarget,
    methodId: "oauth2",
    credential: {
      kind: "oauth2-token-set",
      accessToken: tokens.accessToken,
      ...(tokens.refreshToken ? { refreshToken: tokens.refreshToken } : {}),
      expiresAt: tokens.expiresAt.toISOString(),
    },
    credentialExpiresAt: tokens.expiresAt,
  });
  const session = await seedSession(t.deps.database.db, t.deps, {
    organizationId,
    bindings: [{ connection, config: {} }],
  });
  return { connection, session, routeId: session.plan.routes[0]!.id };
}

async function connectionRow(id: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(integrationConnections)
    .where(eq(integrationConnections.id, id));
  return row!;
}

async function waitFor(check: () => boolean, ms = 2000) {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("OAuth2 access tokens", () => {
  it("hands out a token that is not near expiry without calling the provider", async () => {
    const expiresAt = new Date(t.clock.now().getTime() + 3600_000);
    const { session, routeId } = await linearOAuthSession({
      accessToken: "lin-access-fresh",
      refreshToken: "lin-refresh-fresh",
      expiresAt,
    });
    const resolved = await resolve(session.sessionId, routeId);
    expect(resolved.status).toBe(200);
    expect(resolved.body).toEqual({
      value: "lin-access-fresh",
      expiresAt: expiresAt.toISOString(),
      credentialVersion: 1,
    });
  });

  it("refreshes a token expiring within 60 s, stores the new version and tells gateways", async () => {
    const { connection, session, routeId } = await linearOAuthSession({
      accessToken: "lin-access-old",
      refreshToken: "lin-refresh-old",
      expiresAt: new Date(t.clock.now().getTime() + 30_000),
    });
    const received: URLSearchParams[] = [];
    server.use(
      http.post(LINEAR_TOKEN_URL, async ({ request }) => {
        received.push(new URLSearchParams(await request.text()));
        return HttpResponse.json({
          access_token: "lin-access-new",
          refresh_token: "lin-refresh-new",
          expires_in: 86_400,
          token_type: "Bearer",
        });
      }),
    );
    const resolved = await resolve(session.sessionId, routeId);
    expect(resolved.status).toBe(200);
    expect(resolved.body.value).toBe("lin-access-new");
    expect(resolved.body.credentialVersion).toBe(2);
    expect(received).toHaveLength(1);
    expect(received[0]?.get("grant_type")).toBe("refresh_token");
    expect(received[0]?.get("refresh_token")).toBe("lin-refresh-old");

    const stored = await readCurrentCredential(t.deps.database.db, t.deps.keyRing, connection.id);
    expect(stored?.version).toBe(2);
    expect(stored?.credential).toMatchObject({
      kind: "oauth2-token-set",
      accessToken: "lin-access-new",
      refreshToken: "lin-refresh-new",
    });
    await waitFor(() =>
      events.some((e) => e.type === "credential.rotated" && e.connectionId === connection.id),
    );

    // The next resolution uses the stored token: no second refresh.
    const again = await resolve(session.sessionId, routeId);
    expect(again.body).toMatchObject({ value: "lin-access-new", credentialVersion: 2 });
    expect(received).toHaveLength(1);
    const lines = t.logger.lines.join("\n");
    for (const secret of [
      "lin-access-new",
      "lin-refresh-new",
      "lin-refresh-old",
      "linear-client-secret-value",
    ]) {
      expect(lines).not.toContain(secret);
    }
  });

  it("refreshes once when two resolutions race", async () => {
    const { session, routeId } = await linearOAuthSession({
      accessToken: "lin-race-old",
      refreshToken: "lin-race-refresh",
      expiresAt: new Date(t.clock.now().getTime() + 10_000),
    });
    let calls = 0;
    server.use(
      http.post(LINEAR_TOKEN_URL, async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 100));
        return HttpResponse.json({
          access_token: `lin-race-new-${calls}`,
          refresh_token: "lin-race-refresh-2",
          expires_in: 3600,
        });
      }),
    );
    const [a, b] = await Promise.all([
      resolve(session.sessionId, routeId),
      resolve(session.sessionId, routeId),
    ]);
    expect(calls).toBe(1);
    expect(a.body.value).toBe("lin-race-new-1");
    expect(b.body.value).toBe("lin-race-new-1");
  });

  it("refreshes once when resolutions on two control-plane replicas race", async () => {
    const replica = await t.createReplica();
    const { session, routeId } = await linearOAuthSession({
      accessToken: "lin-replicas-old",
      refreshToken: "lin-replicas-refresh",
      expiresAt: new Date(t.clock.now().getTime() + 10_000),
    });
    let calls = 0;
    server.use(
      http.post(LINEAR_TOKEN_URL, async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 100));
        return HttpResponse.json({
          access_token: `lin-replicas-new-${calls}`,
          refresh_token: "lin-replicas-refresh-2",
          expires_in: 3600,
        });
      }),
    );
    const atReplica = async () => {
      const response = await replica.app.request("/internal/v1/credentials/resolve", {
        method: "POST",
        headers: {
          authorization: `Bearer ${await t.gatewayAssertion()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ sessionId: session.sessionId, routeId }),
      });
      return { status: response.status, body: (await response.json()) as { value?: string } };
    };
    const [a, b] = await Promise.all([resolve(session.sessionId, routeId), atReplica()]);
    expect(calls).toBe(1);
    expect([a.status, b.status]).toEqual([200, 200]);
    // The replica holding the connection's refresh lock answers with the new token; the other
    // does not wait on the provider call and serves the old token, still valid for 10 s.
    const values = [a.body.value, b.body.value];
    expect(values).toContain("lin-replicas-new-1");
    for (const value of values) expect(["lin-replicas-new-1", "lin-replicas-old"]).toContain(value);
  });

  it("marks the connection error when the refresh fails permanently", async () => {
    const { connection, session, routeId } = await linearOAuthSession({
      accessToken: "lin-access-dead",
      refreshToken: "lin-refresh-dead",
      expiresAt: new Date(t.clock.now().getTime() + 5_000),
    });
    server.use(
      http.post(LINEAR_TOKEN_URL, () =>
        HttpResponse.json(
          { error: "invalid_grant", error_description: "revoked" },
          { status: 400 },
        ),
      ),
    );
    const refused = await resolve(session.sessionId, routeId);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("credential_unavailable");
    expect(refused.text).not.toContain("lin-refresh-dead");
    const row = await connectionRow(connection.id);
    expect(row.status).toBe("error");
    expect(row.lastError).toContain("invalid_grant");
    const entries = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.subjectId, connection.id))
      .orderBy(asc(auditLog.seq));
    expect(entries.map((e) => e.action)).toContain("connection.error");
    await waitFor(() =>
      events.some((e) => e.type === "connection.updated" && e.connectionId === connection.id),
    );
    // From now on the connection is refused before any provider call.
    const after = await resolve(session.sessionId, routeId);
    expect(after.status).toBe(409);
    expect(after.body.error.code).toBe("connection_not_active");
  });

  it("keeps the connection active when the refresh fails temporarily", async () => {
    const { connection, session, routeId } = await linearOAuthSession({
      accessToken: "lin-access-flaky",
      refreshToken: "lin-refresh-flaky",
      expiresAt: new Date(t.clock.now().getTime() + 5_000),
    });
    server.use(http.post(LINEAR_TOKEN_URL, () => new HttpResponse("busy", { status: 503 })));
    // The token still works for 5 s: it keeps serving while the refresh backs off.
    const served = await resolve(session.sessionId, routeId);
    expect(served.status).toBe(200);
    expect(served.body.value).toBe("lin-access-flaky");
    // Once it has expired there is nothing to serve.
    clock.advance(6_000);
    const refused = await resolve(session.sessionId, routeId);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("credential_unavailable");
    expect((await connectionRow(connection.id)).status).toBe("active");
    const versions = await t.deps.database.db
      .select()
      .from(connectionCredentials)
      .where(eq(connectionCredentials.connectionId, connection.id));
    expect(versions).toHaveLength(1);
    const entries = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.subjectId, session.sessionId))
      .orderBy(asc(auditLog.seq));
    expect(entries.at(-1)).toMatchObject({
      action: "credential.refused",
      details: { reason: "provider_temporary:http_503" },
    });
  });
});

describe("OAuth2 client credentials (http-api)", () => {
  it("mints an access token with the connection's client", async () => {
    const target = await seedTarget(t.deps.database.db, t.deps, {
      variantId: "http-api",
      config: {
        baseUrl: "https://api.example.test/v1",
        oauth2: { tokenUrl: HTTP_API_TOKEN_URL, clientAuth: "body" },
      },
    });
    const connection = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target,
      methodId: "client-credentials",
      config: { clientId: "example-client" },
      credential: { kind: "secret-fields", fields: { clientSecret: "example-client-secret" } },
    });
    const session = await seedSession(t.deps.database.db, t.deps, {
      organizationId,
      bindings: [{ connection, config: {} }],
    });
    const received: URLSearchParams[] = [];
    server.use(
      http.post(HTTP_API_TOKEN_URL, async ({ request }) => {
        received.push(new URLSearchParams(await request.text()));
        return HttpResponse.json({
          access_token: "cc-access",
          expires_in: 600,
          token_type: "Bearer",
        });
      }),
    );
    const resolved = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(resolved.status).toBe(200);
    expect(resolved.body.value).toBe("cc-access");
    expect(resolved.body.credentialVersion).toBe(1);
    expect(new Date(resolved.body.expiresAt).getTime()).toBe(t.clock.now().getTime() + 600_000);
    expect(received[0]?.get("grant_type")).toBe("client_credentials");
    expect(received[0]?.get("client_id")).toBe("example-client");
    // Cached by the control plane: later resolutions (concurrent or not) reuse the token…
    const again = await Promise.all(
      [1, 2, 3].map(() => resolve(session.sessionId, session.plan.routes[0]!.id)),
    );
    expect(again.map((answer) => answer.body.value)).toEqual([
      "cc-access",
      "cc-access",
      "cc-access",
    ]);
    expect(received).toHaveLength(1);
    // …until shortly (60 s) before it expires, when one new token is fetched.
    clock.advance(600_000 - 59_000);
    try {
      const renewed = await resolve(session.sessionId, session.plan.routes[0]!.id);
      expect(renewed.body.value).toBe("cc-access");
      expect(received).toHaveLength(2);
    } finally {
      clock.advance(-(600_000 - 59_000));
    }
  });
});

describe("GitHub App installation tokens", () => {
  const { privateKey: appKeyPem, publicKey: appPublicPem } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });

  async function githubAppSession(installationId: string) {
    const target = await seedTarget(t.deps.database.db, t.deps, {
      variantId: "github-cloud",
      secrets: { clientId: "Iv1.testclient", appPrivateKeyPem: appKeyPem },
    });
    const connection = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target,
      methodId: "github-app",
      externalSubjectId: installationId,
    });
    const session = await seedSession(t.deps.database.db, t.deps, {
      organizationId,
      bindings: [
        {
          connection,
          config: { repositories: ["acme/widgets"], permissions: { contents: "write" } },
        },
      ],
    });
    const route = session.plan.routes.find((r) => r.credential?.resolver !== undefined);
    if (!route) throw new Error("no resolver route in the GitHub plan");
    return { connection, session, routeId: route.id };
  }

  it("mints a token narrowed to the binding with an app JWT", async () => {
    const { session, routeId } = await githubAppSession("4242");
    const expiresAt = new Date(t.clock.now().getTime() + 3600_000);
    const received: { body: unknown; issuer: unknown }[] = [];
    server.use(
      http.post(
        "https://api.github.com/app/installations/4242/access_tokens",
        async ({ request }) => {
          const jwt = (request.headers.get("authorization") ?? "").replace(/^Bearer /, "");
          const { payload } = await jwtVerify(jwt, await importSPKI(appPublicPem, "RS256"), {
            currentDate: t.clock.now(),
          });
          received.push({ body: await request.json(), issuer: payload.iss });
          return HttpResponse.json(
            { token: "ghs_installation_token_value", expires_at: expiresAt.toISOString() },
            { status: 201 },
          );
        },
      ),
    );
    const resolved = await resolve(session.sessionId, routeId);
    expect(resolved.status).toBe(200);
    expect(resolved.body).toEqual({
      value: "ghs_installation_token_value",
      expiresAt: expiresAt.toISOString(),
      credentialVersion: 0,
    });
    expect(received).toEqual([
      {
        issuer: "Iv1.testclient",
        body: { repositories: ["widgets"], permissions: { contents: "write" } },
      },
    ]);
    const [entry] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.subjectId, session.sessionId));
    expect(entry).toMatchObject({
      action: "credential.resolved",
      details: { reason: "resolver:github_app_installation_token" },
    });
    expect(t.logger.lines.join("\n")).not.toContain("ghs_installation_token_value");
  });

  it("marks the connection error when the installation is gone", async () => {
    const { connection, session, routeId } = await githubAppSession("999");
    server.use(
      http.post("https://api.github.com/app/installations/999/access_tokens", () =>
        HttpResponse.json({ message: "Not Found" }, { status: 404 }),
      ),
    );
    const refused = await resolve(session.sessionId, routeId);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("credential_unavailable");
    expect((await connectionRow(connection.id)).status).toBe("error");
  });
});

import { auditLog, connectionCredentials, integrationConnections, oauthSessions } from "@keyway/db";
import { browseAuthorization } from "@keyway/test-harness";
import { asc, desc, eq, gt } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StartedAuthorizationServer,
  startAuthorizationServer,
} from "../../../../scripts/demo-authorization-server.mjs";
import { readCurrentCredential } from "../credentials/secret-store";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import { OAUTH2_CALLBACK_PATH } from "./oauth2-flow";

/**
 * The OAuth2 authorization code flow against a real, standards-compliant authorization server
 * on loopback (`oidc-provider`, started by the walkthrough's own script): PKCE S256 required,
 * refresh tokens rotated, the client credentials grant. The server's sign-in and consent pages
 * are completed over HTTP as a browser would (cookies, forms, redirects); the redirect back to
 * Keyway is handed to the API app.
 */

const PUBLIC_URL = "http://127.0.0.1:8080";
const CALLBACK = `${PUBLIC_URL}${OAUTH2_CALLBACK_PATH}`;
const CONSOLE_ORIGIN = "https://console.keyway.example";

const clock = createTestClock();
let t: TestApp;
let as: StartedAuthorizationServer;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;

beforeAll(async () => {
  as = await startAuthorizationServer({
    quiet: true,
    clients: [
      { clientId: "keyway", clientSecret: "keyway-secret", redirectUris: [CALLBACK] },
      { clientId: "other", clientSecret: "other-secret", redirectUris: [CALLBACK] },
    ],
  });
  t = await createTestApp({
    clock,
    settings: { publicUrl: PUBLIC_URL, allowedRedirectOrigins: [CONSOLE_ORIGIN] },
  });
  org = await t.createOrganization("Acme");
  for (const [targetKey, clientId, clientSecret] of [
    ["local-api", "keyway", "keyway-secret"],
    ["other-api", "other", "other-secret"],
  ] as const) {
    const created = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
      targetKey,
      variantId: "http-api",
      config: {
        baseUrl: `${as.issuer}/api`,
        oauth2: {
          authorizationUrl: as.authorizationUrl,
          tokenUrl: as.tokenUrl,
          clientId,
          scopes: ["api:read"],
        },
      },
      secrets: { clientSecret },
    });
    expect(created.status, created.text).toBe(201);
  }
});

afterAll(async () => {
  await t?.close();
  await as?.close();
});

// ----- a browser ------------------------------------------------------------------------------

/** The authorization server's pages, as a browser; returns the redirect back to Keyway. */
async function authorize(authorizationUrl: string, options: { deny?: boolean } = {}) {
  const page = await browseAuthorization(authorizationUrl, { stopAt: CALLBACK, ...options });
  if (!page.url.startsWith(CALLBACK)) throw new Error(`stopped at ${page.url}: ${page.text}`);
  return page.url;
}

async function start(body: Record<string, unknown>, token = org.member) {
  return t.call("POST", "/v1/integration/connections/oauth2/start", token, {
    targetKey: "local-api",
    methodId: "oauth2",
    displayName: "Local API",
    ...body,
  });
}

async function callback(url: string, headers: Record<string, string> = {}) {
  const { pathname, search } = new URL(url);
  return t.call("GET", `${pathname}${search}`, undefined, undefined, headers);
}

/** Rows of the tables a refused callback must leave alone, as JSON text. */
async function connectionTables() {
  const db = t.deps.database.db;
  return JSON.stringify([
    await db.select().from(integrationConnections).orderBy(asc(integrationConnections.id)),
    await db.select().from(connectionCredentials).orderBy(asc(connectionCredentials.id)),
  ]);
}

async function auditSince(seq: number) {
  return t.deps.database.db
    .select()
    .from(auditLog)
    .where(gt(auditLog.seq, seq))
    .orderBy(asc(auditLog.seq));
}

async function lastAuditSeq() {
  const [row] = await t.deps.database.db
    .select({ seq: auditLog.seq })
    .from(auditLog)
    .orderBy(desc(auditLog.seq))
    .limit(1);
  return row?.seq ?? 0;
}

// ----- the flow -------------------------------------------------------------------------------

describe("the authorization code flow against oidc-provider", () => {
  let connectionId = "";

  it("start → sign-in and consent at the server → callback → an active connection", async () => {
    const started = await start({});
    expect(started.status, started.text).toBe(201);
    const authorizationUrl = new URL(started.body.authorizationUrl);
    expect(authorizationUrl.origin + authorizationUrl.pathname).toBe(as.authorizationUrl);
    expect(authorizationUrl.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorizationUrl.searchParams.get("redirect_uri")).toBe(CALLBACK);
    expect(authorizationUrl.searchParams.get("scope")).toBe("api:read");
    const state = authorizationUrl.searchParams.get("state") ?? "";
    // Only the state's hash is stored, and the verifier is encrypted.
    const [flow] = await t.deps.database.db.select().from(oauthSessions);
    expect(flow?.stateHash).not.toContain(state);
    expect(JSON.stringify(flow)).not.toContain(state);

    const back = await authorize(started.body.authorizationUrl);
    const completed = await callback(back);
    expect(completed.status, completed.text).toBe(200);
    expect(completed.headers.get("cache-control")).toBe("no-store");
    expect(completed.body).toMatchObject({
      reconnected: false,
      connection: {
        targetKey: "local-api",
        methodId: "oauth2",
        methodKind: "oauth2-authorization-code",
        displayName: "Local API",
        status: "active",
        credentialVersion: 1,
      },
    });
    connectionId = completed.body.connection.id;
    const stored = await readCurrentCredential(t.deps.database.db, t.deps.keyRing, connectionId);
    expect(stored?.credential).toMatchObject({ kind: "oauth2-token-set" });
    expect(stored?.credential.kind === "oauth2-token-set" && stored.credential.refreshToken).toBe(
      as.refreshTokens().at(-1),
    );
    expect(as.grants().authorization_code).toBeGreaterThanOrEqual(1);
  });

  it("answers a browser with a page and sends it back to an allowed redirectAfter", async () => {
    const started = await start({ redirectAfter: `${CONSOLE_ORIGIN}/connections?tab=new` });
    expect(started.status, started.text).toBe(201);
    const back = await authorize(started.body.authorizationUrl);
    const completed = await callback(back, { accept: "text/html" });
    expect(completed.status).toBe(302);
    const location = new URL(completed.headers.get("location") ?? "");
    expect(location.origin).toBe(CONSOLE_ORIGIN);
    expect(location.searchParams.get("tab")).toBe("new");
    expect(location.searchParams.get("status")).toBe("active");
    // A generic API names no provider account, so this is a second connection.
    expect(location.searchParams.get("connectionId")).toMatch(/^conn_/);
    expect(location.searchParams.get("connectionId")).not.toBe(connectionId);
  });

  it("reconnects a connection in error: same id, new credential version, active again", async () => {
    await t.deps.database.db
      .update(integrationConnections)
      .set({ status: "error", lastError: "invalid_grant" })
      .where(eq(integrationConnections.id, connectionId));
    const before = (await t.call("GET", `/v1/integration/connections/${connectionId}`, org.viewer))
      .body;
    const started = await start({ connectionId });
    expect(started.status, started.text).toBe(201);
    const completed = await callback(await authorize(started.body.authorizationUrl), {
      accept: "text/html",
    });
    expect(completed.status).toBe(200);
    expect(completed.headers.get("content-type")).toContain("text/html");
    expect(completed.text).toContain("Connection re-authorised");
    const after = (await t.call("GET", `/v1/integration/connections/${connectionId}`, org.viewer))
      .body;
    expect(after).toMatchObject({ id: connectionId, status: "active", lastError: null });
    expect(after.credentialVersion).toBe(before.credentialVersion + 1);
  });

  it("POST /{id}/test refreshes through the server when the token is near expiry", async () => {
    clock.advance(3600_000 - 30_000);
    const before = as.grants().refresh_token ?? 0;
    const tested = await t.call(
      "POST",
      `/v1/integration/connections/${connectionId}/test`,
      org.member,
    );
    expect(tested.status, tested.text).toBe(200);
    expect(tested.body.ok).toBe(true);
    expect(as.grants().refresh_token).toBe(before + 1);
    clock.advance(-(3600_000 - 30_000));
  });
});

// ----- refusals -------------------------------------------------------------------------------

describe("refused callbacks: nothing written but an audit entry", () => {
  async function refusedCallback(url: string, expected: { status: number; code: string }) {
    const tables = await connectionTables();
    const seq = await lastAuditSeq();
    const answer = await callback(url);
    expect(answer.status, answer.text).toBe(expected.status);
    expect(answer.body.error.code).toBe(expected.code);
    expect(await connectionTables()).toBe(tables);
    const entries = await auditSince(seq);
    expect(entries.map((entry) => entry.action)).toEqual(["connection.oauth2_refused"]);
    return { answer, entry: entries[0]! };
  }

  it("a replayed state", async () => {
    const started = await start({ displayName: "Replay" });
    const back = await authorize(started.body.authorizationUrl);
    expect((await callback(back)).status).toBe(200);
    const { answer } = await refusedCallback(back, { status: 422, code: "oauth2_state_invalid" });
    expect(answer.body.error.details).toEqual({ reason: "used" });
  });

  it("an expired state (10 minutes)", async () => {
    const started = await start({ displayName: "Late" });
    const back = await authorize(started.body.authorizationUrl);
    clock.advance(10 * 60_000 + 1);
    try {
      const { answer } = await refusedCallback(back, { status: 422, code: "oauth2_state_invalid" });
      expect(answer.body.error.details).toEqual({ reason: "expired" });
    } finally {
      clock.advance(-(10 * 60_000 + 1));
    }
  });

  it("an unknown state, with a page for a browser", async () => {
    const answer = await callback(`${CALLBACK}?state=made-up&code=made-up`, {
      accept: "text/html",
    });
    expect(answer.status).toBe(422);
    expect(answer.headers.get("content-type")).toContain("text/html");
    expect(answer.text).toContain("The connection was not made");
    expect(answer.text).toContain("oauth2_state_invalid");
  });

  it("a code paired with another flow's state (the PKCE verifier does not match)", async () => {
    const first = await start({ displayName: "First" });
    const second = await start({ displayName: "Second" });
    const firstBack = new URL(await authorize(first.body.authorizationUrl));
    const secondBack = new URL(await authorize(second.body.authorizationUrl));
    // The attacker's code (issued for the second challenge) with the victim's state.
    const swapped = new URL(CALLBACK);
    swapped.searchParams.set("state", firstBack.searchParams.get("state") ?? "");
    swapped.searchParams.set("code", secondBack.searchParams.get("code") ?? "");
    const { answer, entry } = await refusedCallback(swapped.toString(), {
      status: 422,
      code: "oauth2_code_rejected",
    });
    expect(answer.body.error.details).toEqual({ providerError: "invalid_grant" });
    expect(entry.details).toMatchObject({ reason: "code_exchange_failed" });
  });

  it("a callback for a different target (a code issued to another target's client)", async () => {
    const mine = await start({ displayName: "Mine" });
    const theirs = await start({ targetKey: "other-api", displayName: "Theirs" });
    const mineBack = new URL(await authorize(mine.body.authorizationUrl));
    const theirsBack = new URL(await authorize(theirs.body.authorizationUrl));
    const crossed = new URL(CALLBACK);
    crossed.searchParams.set("state", mineBack.searchParams.get("state") ?? "");
    crossed.searchParams.set("code", theirsBack.searchParams.get("code") ?? "");
    await refusedCallback(crossed.toString(), { status: 422, code: "oauth2_code_rejected" });
  });

  it("the user denies consent at the server (access_denied is named)", async () => {
    const started = await start({ displayName: "Denied" });
    const back = await authorize(started.body.authorizationUrl, { deny: true });
    const { answer } = await refusedCallback(back, {
      status: 422,
      code: "oauth2_authorization_denied",
    });
    expect(answer.body.error.details).toEqual({ providerError: "access_denied" });
  });

  it("an open redirect in redirectAfter is refused at start, audited, no flow stored", async () => {
    const flows = (await t.deps.database.db.select().from(oauthSessions)).length;
    const seq = await lastAuditSeq();
    for (const redirectAfter of [
      "https://evil.example/steal",
      `${CONSOLE_ORIGIN}.evil.example/`,
      "http://console.keyway.example/",
    ]) {
      const refused = await start({ redirectAfter });
      expect(refused.status, redirectAfter).toBe(422);
      expect(refused.body.error.code).toBe("redirect_not_allowed");
    }
    expect((await t.deps.database.db.select().from(oauthSessions)).length).toBe(flows);
    expect((await auditSince(seq)).map((entry) => entry.details)).toEqual(
      Array(3).fill(expect.objectContaining({ reason: "redirect_not_allowed" })),
    );
  });

  it("another organization's state never creates a connection there", async () => {
    const other = await t.createOrganization("Other org");
    const mine = await t.call("GET", "/v1/integration/connections", org.viewer);
    // Org B cannot reconnect org A's connection (a 404, as for any id of another organization)…
    const [first] = mine.body.items;
    const flows = (await t.deps.database.db.select().from(oauthSessions)).length;
    const tables = await connectionTables();
    const seq = await lastAuditSeq();
    const reconnect = await start({ connectionId: first.id }, other.member);
    expect(reconnect.status).toBe(404);
    // Nothing written but one audit entry, in the organization that asked.
    expect((await t.deps.database.db.select().from(oauthSessions)).length).toBe(flows);
    expect(await connectionTables()).toBe(tables);
    const entries = await auditSince(seq);
    expect(entries).toEqual([
      expect.objectContaining({
        action: "connection.oauth2_refused",
        organizationId: other.id,
        details: expect.objectContaining({ reason: "connection_not_found" }),
      }),
    ]);
    // …and a flow org A started lands in org A whoever completes it.
    const started = await start({ displayName: "Org A only" });
    const completed = await callback(await authorize(started.body.authorizationUrl));
    expect(completed.status).toBe(200);
    const theirs = await t.call("GET", "/v1/integration/connections", other.viewer);
    expect(theirs.body.items).toEqual([]);
  });

  it("the callback needs no bearer token, and no other /v1 route lets one through", async () => {
    const noState = await t.call("GET", OAUTH2_CALLBACK_PATH, undefined);
    expect(noState.status).toBe(400);
    for (const path of [`${OAUTH2_CALLBACK_PATH}/`, "/v1/integration/connections"]) {
      expect((await t.call("GET", path, undefined)).status, path).toBe(401);
    }
    expect((await t.call("POST", OAUTH2_CALLBACK_PATH, undefined)).status).toBe(401);
  });
});

// ----- client credentials ---------------------------------------------------------------------

describe("client credentials connections", () => {
  it("fetch one token when created; a client the server refuses is never stored", async () => {
    const before = as.grants().client_credentials ?? 0;
    const created = await t.call("POST", "/v1/integration/connections", org.member, {
      targetKey: "local-api",
      methodId: "client-credentials",
      displayName: "Machine",
      config: { clientId: "keyway" },
      secrets: { clientSecret: "keyway-secret" },
    });
    expect(created.status, created.text).toBe(201);
    expect(as.grants().client_credentials).toBe(before + 1);

    const tables = await connectionTables();
    const refused = await t.call("POST", "/v1/integration/connections", org.member, {
      targetKey: "local-api",
      methodId: "client-credentials",
      displayName: "Wrong secret",
      config: { clientId: "keyway" },
      secrets: { clientSecret: "not-the-secret" },
    });
    expect(refused.status, refused.text).toBe(422);
    expect(refused.body.error).toMatchObject({
      code: "client_credentials_rejected",
      details: { providerError: "invalid_client" },
    });
    expect(refused.text).not.toContain("not-the-secret");
    expect(await connectionTables()).toBe(tables);

    const tested = await t.call(
      "POST",
      `/v1/integration/connections/${created.body.id}/test`,
      org.member,
    );
    expect(tested.status, tested.text).toBe(200);
    expect(tested.body.ok).toBe(true);
  });
});

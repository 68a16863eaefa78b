import { createHash } from "node:crypto";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readCurrentCredential } from "../credentials/secret-store";
import type { FeedMessage } from "../events/invalidations";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import { OAUTH2_CALLBACK_PATH } from "./oauth2-flow";

/**
 * Linear, Slack and Atlassian connected through the real API: `start`, the provider's redirect
 * back to the callback, the code exchange, the connection's provider subject (Linear
 * organization, Slack team, Atlassian cloud id), credential resolution for a sandbox, and
 * refresh — with the refresh tokens Slack and Atlassian rotate on every use. msw stands in for
 * each provider, answering in the shapes their documentation publishes:
 * - Linear: linear.app/developers/oauth-2-0-authentication (form token requests, `read,write`
 *   scopes, `organization { id }` over GraphQL);
 * - Slack: docs.slack.dev/reference/methods/oauth.v2.access and
 *   docs.slack.dev/authentication/using-token-rotation (`ok`, `team.id`, `xoxe.` tokens that
 *   expire after 12 hours, errors as HTTP 200 `ok: false`);
 * - Atlassian: developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps (JSON token
 *   requests, rotating refresh tokens with `offline_access`, `accessible-resources` listing each
 *   site's cloud id).
 * The stand-ins check what a provider checks (client, redirect URI, PKCE verifier, the current
 * refresh token) and refuse anything else as the provider would.
 */

const PUBLIC_URL = "http://127.0.0.1:8080";
const CALLBACK = `${PUBLIC_URL}${OAUTH2_CALLBACK_PATH}`;

const server = setupServer();
const clock = createTestClock();
let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
const events: FeedMessage[] = [];

beforeAll(async () => {
  server.listen({ onUnhandledRequest: "error" });
  t = await createTestApp({
    clock,
    settings: { publicUrl: PUBLIC_URL },
    fetch: (input, init) => globalThis.fetch(input, init),
  });
  t.deps.invalidations.subscribe((event) => events.push(event));
  org = await t.createOrganization("Acme");
  const targets = [
    { variantId: "linear", targetKey: "linear", config: { clientId: "lin-client" } },
    { variantId: "slack", targetKey: "slack", config: { clientId: "1234.5678", pkce: true } },
    { variantId: "atlassian", targetKey: "atlassian", config: { clientId: "atl-client" } },
  ];
  for (const target of targets) {
    const secrets = { clientSecret: `${target.variantId}-client-secret` };
    // Registry sync made default targets; the operator configures their OAuth clients.
    const answer = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
      ...target,
      targetKey: `${target.targetKey}-oauth`,
      secrets,
    });
    expect(answer.status, answer.text).toBe(201);
  }
});
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await t.close();
});

// ----- helpers --------------------------------------------------------------------------------

/** Starts a flow; returns the authorization URL's parameters. */
async function start(targetKey: string) {
  const started = await t.call("POST", "/v1/integration/connections/oauth2/start", org.member, {
    targetKey,
    methodId: "oauth2",
    displayName: targetKey,
  });
  expect(started.status, started.text).toBe(201);
  return new URL(started.body.authorizationUrl);
}

/** The provider sends the browser back with a code. */
async function complete(state: string, code: string) {
  const query = new URLSearchParams({ code, state });
  return t.call("GET", `${OAUTH2_CALLBACK_PATH}?${query}`, undefined);
}

let profiles = 0;
async function sessionRoute(connectionId: string) {
  const profile = await t.call("POST", "/v1/sandbox-profiles", org.admin, {
    name: `profile ${++profiles}`,
  });
  const version = await t.call(
    "POST",
    `/v1/sandbox-profiles/${profile.body.id}/versions`,
    org.admin,
    { bindings: [{ connectionId, kind: "connector", config: {} }] },
  );
  expect(version.status, version.text).toBe(201);
  const session = await t.call("POST", "/v1/sandbox-sessions", org.admin, {
    profileId: profile.body.id,
  });
  const plan = await t.call(
    "GET",
    `/v1/sandbox-profiles/${profile.body.id}/versions/1/plan`,
    org.admin,
  );
  return { sessionId: session.body.id as string, routeId: plan.body.plan.routes[0].id as string };
}

async function resolve(route: { sessionId: string; routeId: string }) {
  return t.call("POST", "/internal/v1/credentials/resolve", await t.gatewayAssertion(), route);
}

async function storedTokens(connectionId: string) {
  const current = await readCurrentCredential(t.deps.database.db, t.deps.keyRing, connectionId);
  if (current?.credential.kind !== "oauth2-token-set") throw new Error("no token set");
  return { version: current.version, ...current.credential };
}

const s256 = (verifier: string) => createHash("sha256").update(verifier).digest("base64url");

function basicAuth(request: Request): string {
  const header = request.headers.get("authorization") ?? "";
  return Buffer.from(header.replace(/^Basic /, ""), "base64").toString();
}

// ----- Linear ---------------------------------------------------------------------------------

describe("Linear", () => {
  it("connects with PKCE, records the organization, refreshes with the rotated token", async () => {
    const url = await start("linear-oauth");
    expect(url.origin + url.pathname).toBe("https://linear.app/oauth/authorize");
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      client_id: "lin-client",
      redirect_uri: CALLBACK,
      response_type: "code",
      scope: "read,write",
      code_challenge_method: "S256",
    });
    const challenge = url.searchParams.get("code_challenge");
    let issued = 0;
    let currentRefresh = "";
    server.use(
      http.post("https://api.linear.app/oauth/token", async ({ request }) => {
        const form = new URLSearchParams(await request.text());
        if (
          form.get("client_id") !== "lin-client" ||
          form.get("client_secret") !== "linear-client-secret"
        ) {
          return HttpResponse.json({ error: "invalid_client" }, { status: 401 });
        }
        if (form.get("grant_type") === "authorization_code") {
          const verifier = form.get("code_verifier") ?? "";
          if (
            form.get("code") !== "lin-code" ||
            s256(verifier) !== challenge ||
            form.get("redirect_uri") !== CALLBACK
          ) {
            return HttpResponse.json({ error: "invalid_grant" }, { status: 400 });
          }
        } else if (form.get("refresh_token") !== currentRefresh) {
          return HttpResponse.json({ error: "invalid_grant" }, { status: 400 });
        }
        issued++;
        currentRefresh = `lin-refresh-${issued}`;
        return HttpResponse.json({
          access_token: `lin_oauth_access_${issued}`,
          token_type: "Bearer",
          expires_in: 86399,
          scope: "read write",
          refresh_token: currentRefresh,
        });
      }),
      http.post("https://api.linear.app/graphql", ({ request }) =>
        request.headers.get("authorization") === `Bearer lin_oauth_access_${issued}`
          ? HttpResponse.json({ data: { organization: { id: "lin-org-42" } } })
          : HttpResponse.json(
              { errors: [{ message: "Authentication required" }] },
              { status: 401 },
            ),
      ),
    );
    const completed = await complete(url.searchParams.get("state") ?? "", "lin-code");
    expect(completed.status, completed.text).toBe(200);
    const connection = completed.body.connection;
    expect(connection).toMatchObject({ status: "active", externalSubjectId: "lin-org-42" });

    const route = await sessionRoute(connection.id);
    expect((await resolve(route)).body.value).toBe("lin_oauth_access_1");
    clock.advance(86399_000 - 30_000);
    const refreshed = await resolve(route);
    expect(refreshed.body.value).toBe("lin_oauth_access_2");
    expect(await storedTokens(connection.id)).toMatchObject({ refreshToken: "lin-refresh-2" });
    clock.advance(86399_000 - 30_000);
    // Sessions end after a day: a new one for the second refresh.
    expect((await resolve(await sessionRoute(connection.id))).body.value).toBe(
      "lin_oauth_access_3",
    );
  });
});

// ----- Slack ----------------------------------------------------------------------------------

describe("Slack", () => {
  let tokenRequests: Record<string, string>[] = [];
  let currentRefresh = "";
  let revoked = false;

  function slackStandIn(challenge: string | null) {
    let issued = 0;
    return http.post("https://slack.com/api/oauth.v2.access", async ({ request }) => {
      const form = Object.fromEntries(new URLSearchParams(await request.text()));
      tokenRequests.push(form);
      if (basicAuth(request) !== "1234.5678:slack-client-secret") {
        return HttpResponse.json({ ok: false, error: "invalid_client_id" });
      }
      if (form.grant_type === "refresh_token") {
        if (revoked) return HttpResponse.json({ ok: false, error: "invalid_refresh_token" });
        if (form.refresh_token !== currentRefresh) {
          return HttpResponse.json({ ok: false, error: "invalid_refresh_token" });
        }
      } else if (
        form.code !== "slack-code" ||
        form.redirect_uri !== CALLBACK ||
        s256(form.code_verifier ?? "") !== challenge
      ) {
        return HttpResponse.json({ ok: false, error: "invalid_code" });
      }
      issued++;
      currentRefresh = `xoxe-1-refresh-${issued}`;
      return HttpResponse.json({
        ok: true,
        app_id: "A0KRD7HC3",
        authed_user: { id: "U1234" },
        scope: "channels:history,channels:read,chat:write,users:read",
        token_type: "bot",
        access_token: `xoxe.xoxb-1-access-${issued}`,
        bot_user_id: "U0KRQLJ9H",
        refresh_token: currentRefresh,
        expires_in: 43200,
        team: { id: "T9TK3CUKW", name: "Slack Pickleball Team" },
        enterprise: null,
        is_enterprise_install: false,
      });
    });
  }

  it("connects a workspace, rotates the refresh token on every refresh, stores each atomically", async () => {
    const url = await start("slack-oauth");
    expect(url.origin + url.pathname).toBe("https://slack.com/oauth/v2/authorize");
    expect(url.searchParams.get("scope")).toBe(
      "channels:history,channels:read,chat:write,users:read",
    );
    server.use(slackStandIn(url.searchParams.get("code_challenge")));
    tokenRequests = [];
    const completed = await complete(url.searchParams.get("state") ?? "", "slack-code");
    expect(completed.status, completed.text).toBe(200);
    const connection = completed.body.connection;
    expect(connection).toMatchObject({ status: "active", externalSubjectId: "T9TK3CUKW" });
    expect(connection.credentialExpiresAt).toBe(
      new Date(clock.now().getTime() + 43200_000).toISOString(),
    );

    const route = await sessionRoute(connection.id);
    for (const n of [2, 3]) {
      clock.advance(43200_000 - 30_000);
      const resolved = await resolve(route);
      expect(resolved.status, resolved.text).toBe(200);
      expect(resolved.body.value).toBe(`xoxe.xoxb-1-access-${n}`);
      // The new access token and the refresh token rotated with it are one credential version.
      expect(await storedTokens(connection.id)).toMatchObject({
        version: n,
        accessToken: `xoxe.xoxb-1-access-${n}`,
        refreshToken: `xoxe-1-refresh-${n}`,
      });
    }
    // Each refresh sent the refresh token the previous answer rotated in.
    expect(tokenRequests.map((r) => r.refresh_token ?? r.grant_type)).toEqual([
      "authorization_code",
      "xoxe-1-refresh-1",
      "xoxe-1-refresh-2",
    ]);
  });

  it("a reconnect of the same workspace keeps the connection; an uninstall marks it error", async () => {
    const listed = await t.call(
      "GET",
      "/v1/integration/connections?targetKey=slack-oauth",
      org.viewer,
    );
    const [connection] = listed.body.items;
    const url = await start("slack-oauth");
    server.use(slackStandIn(url.searchParams.get("code_challenge")));
    const again = await complete(url.searchParams.get("state") ?? "", "slack-code");
    expect(again.body).toMatchObject({ reconnected: true, connection: { id: connection.id } });

    const route = await sessionRoute(connection.id);
    revoked = true;
    events.length = 0;
    clock.advance(43200_000 - 30_000);
    const refused = await resolve(route);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("credential_unavailable");
    const after = await t.call("GET", `/v1/integration/connections/${connection.id}`, org.viewer);
    expect(after.body).toMatchObject({ status: "error" });
    expect(after.body.lastError).toContain("invalid_refresh_token");
    await expect
      .poll(() => events)
      .toContainEqual({
        type: "connection.updated",
        connectionId: connection.id,
      });
  });
});

// ----- Atlassian ------------------------------------------------------------------------------

describe("Atlassian", () => {
  it("connects through 3LO, takes the cloud id from accessible-resources, rotates on refresh", async () => {
    const url = await start("atlassian-oauth");
    expect(url.origin + url.pathname).toBe("https://auth.atlassian.com/authorize");
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      audience: "api.atlassian.com",
      client_id: "atl-client",
      redirect_uri: CALLBACK,
      response_type: "code",
      prompt: "consent",
      scope: "read:jira-work write:jira-work read:jira-user offline_access",
    });
    let issued = 0;
    let currentRefresh = "";
    server.use(
      http.post("https://auth.atlassian.com/oauth/token", async ({ request }) => {
        expect(request.headers.get("content-type")).toBe("application/json");
        const body = (await request.json()) as Record<string, string>;
        if (body.client_id !== "atl-client" || body.client_secret !== "atlassian-client-secret") {
          return HttpResponse.json(
            { error: "access_denied", error_description: "Unauthorized" },
            { status: 401 },
          );
        }
        const valid =
          body.grant_type === "authorization_code"
            ? body.code === "atl-code" && body.redirect_uri === CALLBACK
            : body.refresh_token === currentRefresh;
        if (!valid) {
          return HttpResponse.json(
            { error: "invalid_grant", error_description: "Unknown or invalid refresh token." },
            { status: 403 },
          );
        }
        issued++;
        currentRefresh = `atl-refresh-${issued}`;
        return HttpResponse.json({
          access_token: `atl-access-${issued}`,
          expires_in: 3600,
          token_type: "Bearer",
          refresh_token: currentRefresh,
          scope: "read:jira-work write:jira-work read:jira-user offline_access",
        });
      }),
      http.get("https://api.atlassian.com/oauth/token/accessible-resources", ({ request }) =>
        request.headers.get("authorization") === `Bearer atl-access-${issued}`
          ? HttpResponse.json([
              {
                id: "1324a887-45db-1bf4-1e99-ef0ff456d421",
                name: "Site name",
                url: "https://your-domain.atlassian.net",
                scopes: ["write:jira-work", "read:jira-user"],
                avatarUrl:
                  "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
              },
            ])
          : new HttpResponse(null, { status: 401 }),
      ),
    );
    const completed = await complete(url.searchParams.get("state") ?? "", "atl-code");
    expect(completed.status, completed.text).toBe(200);
    const connection = completed.body.connection;
    expect(connection).toMatchObject({
      status: "active",
      externalSubjectId: "1324a887-45db-1bf4-1e99-ef0ff456d421",
    });
    const route = await sessionRoute(connection.id);
    clock.advance(3600_000 - 30_000);
    expect((await resolve(route)).body.value).toBe("atl-access-2");
    expect(await storedTokens(connection.id)).toMatchObject({ refreshToken: "atl-refresh-2" });
  });
});

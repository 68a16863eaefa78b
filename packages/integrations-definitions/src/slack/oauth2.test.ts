import { OAuth2Error, pkceChallenge } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { slackOAuth2 } from "./oauth2";
import { slackTargetConfigSchema } from "./target-config-schema";

const TOKEN_URL = "https://slack.com/api/oauth.v2.access";
const NOW = new Date("2026-03-01T12:00:00.000Z");
const clock = { now: () => NOW };
const CLIENT_ID = "1234567890.0987654321";
const CLIENT_SECRET = "slack-client-secret";

const target = {
  id: "tgt_slack",
  targetKey: "slack",
  config: slackTargetConfigSchema.parse({ clientId: CLIENT_ID }),
  secrets: { clientSecret: CLIENT_SECRET },
};

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

interface ReceivedTokenRequest {
  authorization: string | null;
  form: Record<string, string>;
}

function tokenEndpoint(respond: () => Response): ReceivedTokenRequest[] {
  const received: ReceivedTokenRequest[] = [];
  server.use(
    http.post(TOKEN_URL, async ({ request }) => {
      received.push({
        authorization: request.headers.get("authorization"),
        form: Object.fromEntries(new URLSearchParams(await request.text())),
      });
      return respond();
    }),
  );
  return received;
}

const basic = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString("base64")}`;

/** oauth.v2.access with token rotation on (docs.slack.dev/authentication/using-token-rotation). */
function rotatingTokenResponse(accessToken: string, refreshToken: string) {
  return HttpResponse.json({
    ok: true,
    access_token: accessToken,
    token_type: "bot",
    scope: "channels:history,channels:read,chat:write,users:read",
    bot_user_id: "U0KRQLJ9H",
    app_id: "A0KRD7HC3",
    team: { id: "T9TK3CUKW", name: "Slack Softball Team" },
    enterprise: null,
    is_enterprise_install: false,
    authed_user: { id: "U1234" },
    expires_in: 43200,
    refresh_token: refreshToken,
  });
}

describe("slack OAuth2 authorization URL", () => {
  const base = {
    redirectUri: "https://keyway.example/v1/integration/connections/oauth2/callback",
    state: "state-123",
    codeChallenge: pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
  };

  it("asks for comma-separated bot scopes without PKCE by default", () => {
    const url = new URL(slackOAuth2.authorizationUrl({ target, ...base }));
    expect(url.origin + url.pathname).toBe("https://slack.com/oauth/v2/authorize");
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: CLIENT_ID,
      redirect_uri: base.redirectUri,
      response_type: "code",
      scope: "channels:history,channels:read,chat:write,users:read",
      state: "state-123",
    });
  });

  it("adds PKCE S256 and user scopes when configured", () => {
    const config = { ...target.config, pkce: true, userScopes: ["search:read", "users:read"] };
    const url = new URL(
      slackOAuth2.authorizationUrl({
        target: { ...target, config },
        ...base,
        scopes: ["chat:write"],
      }),
    );
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: CLIENT_ID,
      redirect_uri: base.redirectUri,
      response_type: "code",
      scope: "chat:write",
      user_scope: "search:read,users:read",
      state: "state-123",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
    });
  });
});

describe("slack OAuth2 code exchange", () => {
  it("exchanges the code with Basic client credentials and keys the connection by team", async () => {
    const received = tokenEndpoint(() =>
      rotatingTokenResponse("xoxe.xoxb-1-access", "xoxe-1-refresh"),
    );
    const tokens = await slackOAuth2.exchangeCode({
      target,
      code: "slack-code-1",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "verifier-1",
      fetch: globalThis.fetch,
      clock,
    });
    expect(tokens).toEqual({
      accessToken: "xoxe.xoxb-1-access",
      refreshToken: "xoxe-1-refresh",
      expiresAt: new Date(NOW.getTime() + 43200 * 1000),
      scope: "channels:history,channels:read,chat:write,users:read",
      tokenType: "bot",
      externalSubjectId: "T9TK3CUKW",
    });
    expect(received).toEqual([
      {
        authorization: basic,
        form: {
          grant_type: "authorization_code",
          code: "slack-code-1",
          redirect_uri: "https://keyway.example/cb",
        },
      },
    ]);
  });

  it("sends the PKCE verifier, and only the client id for a public client", async () => {
    const received = tokenEndpoint(() =>
      HttpResponse.json({
        ok: true,
        access_token: "xoxb-2",
        token_type: "bot",
        team: { id: "T1", name: "x" },
      }),
    );
    const tokens = await slackOAuth2.exchangeCode({
      target: { ...target, config: { ...target.config, pkce: true }, secrets: {} },
      code: "c",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "verifier-2",
      fetch: globalThis.fetch,
      clock,
    });
    expect(tokens).toMatchObject({ accessToken: "xoxb-2", externalSubjectId: "T1" });
    expect(received).toEqual([
      {
        authorization: null,
        form: {
          grant_type: "authorization_code",
          code: "c",
          redirect_uri: "https://keyway.example/cb",
          code_verifier: "verifier-2",
          client_id: CLIENT_ID,
        },
      },
    ]);
  });

  it("keys an org-wide install by its enterprise id", async () => {
    tokenEndpoint(() =>
      HttpResponse.json({
        ok: true,
        access_token: "xoxb-org",
        token_type: "bot",
        team: null,
        enterprise: { id: "E0123ABCD", name: "Acme" },
        is_enterprise_install: true,
      }),
    );
    const tokens = await slackOAuth2.exchangeCode({
      target,
      code: "c",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "v",
      fetch: globalThis.fetch,
      clock,
    });
    expect(tokens.externalSubjectId).toBe("E0123ABCD");
  });

  it("reports invalid_code (HTTP 200, ok: false) as permanent", async () => {
    tokenEndpoint(() => HttpResponse.json({ ok: false, error: "invalid_code" }));
    await expect(
      slackOAuth2.exchangeCode({
        target,
        code: "used",
        redirectUri: "https://keyway.example/cb",
        codeVerifier: "v",
        fetch: globalThis.fetch,
        clock,
      }),
    ).rejects.toMatchObject({ kind: "permanent", code: "invalid_code" });
  });
});

describe("slack OAuth2 refresh", () => {
  const refresh = () =>
    slackOAuth2.refresh({ target, refreshToken: "xoxe-1-refresh", fetch: globalThis.fetch, clock });

  it("returns a new access token and a new refresh token", async () => {
    const received = tokenEndpoint(() =>
      rotatingTokenResponse("xoxe.xoxb-1-access-2", "xoxe-1-refresh-2"),
    );
    await expect(refresh()).resolves.toEqual({
      accessToken: "xoxe.xoxb-1-access-2",
      refreshToken: "xoxe-1-refresh-2",
      expiresAt: new Date(NOW.getTime() + 43200 * 1000),
      scope: "channels:history,channels:read,chat:write,users:read",
      tokenType: "bot",
      externalSubjectId: "T9TK3CUKW",
    });
    expect(received).toEqual([
      {
        authorization: basic,
        form: { grant_type: "refresh_token", refresh_token: "xoxe-1-refresh" },
      },
    ]);
  });

  it("reports invalid_refresh_token (HTTP 200, ok: false) as permanent", async () => {
    tokenEndpoint(() => HttpResponse.json({ ok: false, error: "invalid_refresh_token" }));
    const error = await refresh().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuth2Error);
    expect(error).toMatchObject({ kind: "permanent", code: "invalid_refresh_token" });
    expect(String(error)).not.toContain("xoxe-1-refresh");
  });

  it.each(["ratelimited", "internal_error", "service_unavailable"])(
    "reports %s (HTTP 200, ok: false) as temporary",
    async (code) => {
      tokenEndpoint(() => HttpResponse.json({ ok: false, error: code }));
      await expect(refresh()).rejects.toMatchObject({ kind: "temporary", code });
    },
  );

  it("reports a 503 as temporary", async () => {
    tokenEndpoint(() => new HttpResponse("<html>Service Unavailable</html>", { status: 503 }));
    await expect(refresh()).rejects.toMatchObject({
      kind: "temporary",
      code: "http_503",
      status: 503,
    });
  });

  it("reports a 429 as temporary", async () => {
    tokenEndpoint(() => HttpResponse.json({ ok: false, error: "ratelimited" }, { status: 429 }));
    await expect(refresh()).rejects.toMatchObject({ kind: "temporary" });
  });

  it("refuses to refresh without a client secret unless the app is a PKCE public client", async () => {
    await expect(
      slackOAuth2.refresh({
        target: { ...target, secrets: {} },
        refreshToken: "xoxe-1-refresh",
        fetch: globalThis.fetch,
        clock,
      }),
    ).rejects.toMatchObject({ kind: "permanent", code: "client_not_configured" });
  });
});

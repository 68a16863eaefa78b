import { OAuth2Error, pkceChallenge } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { linearOAuth2 } from "./oauth2";
import { linearTargetConfigSchema } from "./target-config-schema";

const TOKEN_URL = "https://api.linear.app/oauth/token";
const GRAPHQL_URL = "https://api.linear.app/graphql";
const NOW = new Date("2026-03-01T12:00:00.000Z");
const clock = { now: () => NOW };

const target = {
  id: "tgt_linear",
  targetKey: "linear",
  config: linearTargetConfigSchema.parse({ clientId: "linear-client-id" }),
  secrets: { clientSecret: "linear-client-secret", webhookSecret: "unused" },
};

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

/** Records each token request's form so tests assert on what Linear would have received. */
function tokenEndpoint(respond: () => Response): URLSearchParams[] {
  const received: URLSearchParams[] = [];
  server.use(
    http.post(TOKEN_URL, async ({ request }) => {
      expect(request.headers.get("content-type")).toBe("application/x-www-form-urlencoded");
      received.push(new URLSearchParams(await request.text()));
      return respond();
    }),
  );
  return received;
}

describe("linear OAuth2 authorization URL", () => {
  it("asks for comma-separated scopes with PKCE S256", () => {
    const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const url = new URL(
      linearOAuth2.authorizationUrl({
        target,
        redirectUri: "https://keyway.example/v1/integration/connections/oauth2/callback",
        state: "state-123",
        codeChallenge: pkceChallenge(verifier),
      }),
    );
    expect(url.origin + url.pathname).toBe("https://linear.app/oauth/authorize");
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: "linear-client-id",
      redirect_uri: "https://keyway.example/v1/integration/connections/oauth2/callback",
      response_type: "code",
      scope: "read,write",
      state: "state-123",
      code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
      code_challenge_method: "S256",
    });
  });

  it("uses requested scopes and the configured actor", () => {
    const url = new URL(
      linearOAuth2.authorizationUrl({
        target: { ...target, config: { ...target.config, actor: "app" } },
        redirectUri: "https://keyway.example/cb",
        state: "s",
        codeChallenge: "c",
        scopes: ["read", "issues:create"],
      }),
    );
    expect(url.searchParams.get("scope")).toBe("read,issues:create");
    expect(url.searchParams.get("actor")).toBe("app");
  });

  it("refuses to start without a client id", () => {
    const { clientId: _, ...config } = target.config;
    expect(() =>
      linearOAuth2.authorizationUrl({
        target: { ...target, config },
        redirectUri: "https://keyway.example/cb",
        state: "s",
        codeChallenge: "c",
      }),
    ).toThrow(expect.objectContaining({ kind: "permanent", code: "client_not_configured" }));
  });
});

describe("linear OAuth2 code exchange", () => {
  it("exchanges the code with the PKCE verifier and learns the organization id", async () => {
    const received = tokenEndpoint(() =>
      HttpResponse.json({
        access_token: "lin_oauth_access_1",
        token_type: "Bearer",
        expires_in: 86399,
        scope: "read write",
        refresh_token: "lin_refresh_1",
      }),
    );
    const graphqlAuth: (string | null)[] = [];
    server.use(
      http.post(GRAPHQL_URL, ({ request }) => {
        graphqlAuth.push(request.headers.get("authorization"));
        return HttpResponse.json({ data: { organization: { id: "org-1234" } } });
      }),
    );

    const tokens = await linearOAuth2.exchangeCode({
      target,
      code: "auth-code-1",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "verifier-1",
      fetch: globalThis.fetch,
      clock,
    });

    expect(tokens).toEqual({
      accessToken: "lin_oauth_access_1",
      refreshToken: "lin_refresh_1",
      expiresAt: new Date(NOW.getTime() + 86399 * 1000),
      scope: "read write",
      tokenType: "Bearer",
      externalSubjectId: "org-1234",
    });
    expect(received.map((form) => Object.fromEntries(form))).toEqual([
      {
        grant_type: "authorization_code",
        code: "auth-code-1",
        redirect_uri: "https://keyway.example/cb",
        code_verifier: "verifier-1",
        client_id: "linear-client-id",
        client_secret: "linear-client-secret",
      },
    ]);
    expect(graphqlAuth).toEqual(["Bearer lin_oauth_access_1"]);
  });

  it("still connects when the organization lookup fails", async () => {
    tokenEndpoint(() =>
      HttpResponse.json({ access_token: "lin_oauth_access_2", token_type: "Bearer" }),
    );
    server.use(http.post(GRAPHQL_URL, () => new HttpResponse(null, { status: 502 })));
    const tokens = await linearOAuth2.exchangeCode({
      target,
      code: "c",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "v",
      fetch: globalThis.fetch,
      clock,
    });
    expect(tokens).toEqual({ accessToken: "lin_oauth_access_2", tokenType: "Bearer" });
  });
});

describe("linear OAuth2 refresh", () => {
  const refresh = () =>
    linearOAuth2.refresh({ target, refreshToken: "lin_refresh_1", fetch: globalThis.fetch, clock });

  it("returns the new access token and the rotated refresh token", async () => {
    const received = tokenEndpoint(() =>
      HttpResponse.json({
        access_token: "lin_oauth_access_2",
        token_type: "Bearer",
        expires_in: 86399,
        scope: "read write",
        refresh_token: "lin_refresh_2",
      }),
    );
    await expect(refresh()).resolves.toEqual({
      accessToken: "lin_oauth_access_2",
      refreshToken: "lin_refresh_2",
      expiresAt: new Date(NOW.getTime() + 86399 * 1000),
      scope: "read write",
      tokenType: "Bearer",
    });
    expect(received.map((form) => Object.fromEntries(form))).toEqual([
      {
        grant_type: "refresh_token",
        refresh_token: "lin_refresh_1",
        client_id: "linear-client-id",
        client_secret: "linear-client-secret",
      },
    ]);
  });

  it("reports invalid_grant as a permanent failure", async () => {
    tokenEndpoint(() =>
      HttpResponse.json(
        { error: "invalid_grant", error_description: "refresh token revoked" },
        { status: 400 },
      ),
    );
    const error = await refresh().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuth2Error);
    expect(error).toMatchObject({ kind: "permanent", code: "invalid_grant", status: 400 });
    expect(String(error)).not.toContain("lin_refresh_1");
  });

  it("reports a 503 as a temporary failure", async () => {
    tokenEndpoint(() => new HttpResponse("upstream unavailable", { status: 503 }));
    await expect(refresh()).rejects.toMatchObject({
      kind: "temporary",
      code: "http_503",
      status: 503,
    });
  });

  it("refuses to refresh without a client secret", async () => {
    await expect(
      linearOAuth2.refresh({
        target: { ...target, secrets: {} },
        refreshToken: "lin_refresh_1",
        fetch: globalThis.fetch,
        clock,
      }),
    ).rejects.toMatchObject({ kind: "permanent", code: "client_not_configured" });
  });
});

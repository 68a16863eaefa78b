import { OAuth2Error } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { httpApiDefinition } from "./definition";
import { requestHttpApiClientCredentialsToken } from "./oauth2";
import { type HttpApiTargetConfig, httpApiTargetConfigSchema } from "./target-config-schema";

const TOKEN_URL = "https://auth.acme.example/oauth/token";
const clock = { now: () => new Date("2025-03-01T12:00:00Z") };

interface ReceivedTokenRequest {
  authorization: string | null;
  contentType: string | null;
  form: Record<string, string>;
}

// The last request the stand-in token endpoint received, so tests assert on real HTTP input.
let received: ReceivedTokenRequest | undefined;
let answer: () => Response = () => HttpResponse.json({ error: "server_error" }, { status: 500 });

const server = setupServer(
  http.post(TOKEN_URL, async ({ request }) => {
    received = {
      authorization: request.headers.get("authorization"),
      contentType: request.headers.get("content-type"),
      form: Object.fromEntries(new URLSearchParams(await request.text())),
    };
    return answer();
  }),
);

beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => {
  received = undefined;
});
afterAll(() => server.close());

/** `null` = a target without OAuth2 settings. */
function targetConfig(oauth2: Record<string, unknown> | null): HttpApiTargetConfig {
  return httpApiTargetConfigSchema.parse({
    baseUrl: "https://api.acme.example/v2",
    ...(oauth2 !== null ? { oauth2 } : {}),
  });
}

function requestToken(
  oauth2: Record<string, unknown> | null = {
    tokenUrl: TOKEN_URL,
    scopes: ["orders:read", "orders:write"],
  },
  secrets: Record<string, string> = { clientSecret: "s3cr3t-value" },
) {
  return requestHttpApiClientCredentialsToken({
    target: { id: "tgt_1", targetKey: "acme", config: targetConfig(oauth2), secrets: {} },
    connection: {
      id: "conn_1",
      methodId: "client-credentials",
      methodKind: "oauth2-client-credentials",
      config: { clientId: "acme-client" },
    },
    secrets,
    fetch: globalThis.fetch,
    clock,
  });
}

async function failure(promise: Promise<unknown>): Promise<OAuth2Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof OAuth2Error))
    throw new Error(`expected an OAuth2Error, got ${String(error)}`);
  return error;
}

describe("http-api client credentials", () => {
  it("posts grant_type and scope with Basic client auth and returns the token with its expiry", async () => {
    answer = () =>
      HttpResponse.json({
        access_token: "at-123",
        token_type: "Bearer",
        expires_in: 3600,
        scope: "orders:read",
      });
    await expect(requestToken()).resolves.toEqual({
      accessToken: "at-123",
      tokenType: "Bearer",
      scope: "orders:read",
      expiresAt: new Date("2025-03-01T13:00:00Z"),
    });
    expect(received).toEqual({
      authorization: `Basic ${Buffer.from("acme-client:s3cr3t-value").toString("base64")}`,
      contentType: "application/x-www-form-urlencoded",
      form: { grant_type: "client_credentials", scope: "orders:read orders:write" },
    });
  });

  it("sends the client in the body and the audience when the target says so", async () => {
    answer = () => HttpResponse.json({ access_token: "at-456", token_type: "Bearer" });
    const token = await requestToken({
      tokenUrl: TOKEN_URL,
      audience: "https://api.acme.example",
      clientAuth: "body",
    });
    expect(token).toEqual({ accessToken: "at-456", tokenType: "Bearer" });
    expect(received?.authorization).toBeNull();
    expect(received?.form).toEqual({
      grant_type: "client_credentials",
      audience: "https://api.acme.example",
      client_id: "acme-client",
      client_secret: "s3cr3t-value",
    });
  });

  it("is what the definition's oauth2.clientCredentials runs", async () => {
    answer = () => HttpResponse.json({ access_token: "at-789", expires_in: 60 });
    const token = await httpApiDefinition.oauth2?.clientCredentials?.({
      target: {
        id: "tgt_1",
        targetKey: "acme",
        config: targetConfig({ tokenUrl: TOKEN_URL }),
        secrets: {},
      },
      connection: {
        id: "conn_1",
        methodId: "client-credentials",
        methodKind: "oauth2-client-credentials",
        config: { clientId: "acme-client" },
      },
      secrets: { clientSecret: "s3cr3t-value" },
      fetch: globalThis.fetch,
      clock,
    });
    expect(token).toEqual({ accessToken: "at-789", expiresAt: new Date("2025-03-01T12:01:00Z") });
    expect(received?.form).toEqual({ grant_type: "client_credentials" });
  });

  it("classifies invalid_client as permanent", async () => {
    answer = () => HttpResponse.json({ error: "invalid_client" }, { status: 401 });
    const error = await failure(requestToken());
    expect({ kind: error.kind, code: error.code, status: error.status }).toEqual({
      kind: "permanent",
      code: "invalid_client",
      status: 401,
    });
    expect(error.message).not.toContain("s3cr3t-value");
  });

  it("classifies a server error as temporary", async () => {
    answer = () => new HttpResponse("upstream exploded", { status: 500 });
    const error = await failure(requestToken());
    expect({ kind: error.kind, code: error.code }).toEqual({ kind: "temporary", code: "http_500" });
  });

  it("fails permanently without a token endpoint or a client secret, before any request", async () => {
    const noEndpoint = await failure(requestToken(null));
    expect({ kind: noEndpoint.kind, code: noEndpoint.code }).toEqual({
      kind: "permanent",
      code: "client_not_configured",
    });
    const noSecret = await failure(requestToken({ tokenUrl: TOKEN_URL }, {}));
    expect(noSecret.kind).toBe("permanent");
    const emptySecret = await failure(requestToken({ tokenUrl: TOKEN_URL }, { clientSecret: "" }));
    expect({ kind: emptySecret.kind, code: emptySecret.code }).toEqual({
      kind: "permanent",
      code: "invalid_client",
    });
    expect(received).toBeUndefined();
  });

  it("refuses the authorization-code flows while the target names no client", async () => {
    const oauth2 = httpApiDefinition.oauth2;
    if (oauth2 === undefined) throw new Error("http-api must declare oauth2");
    const target = {
      id: "tgt_1",
      targetKey: "acme",
      config: targetConfig({ tokenUrl: TOKEN_URL }),
      secrets: {},
    };
    expect(() =>
      oauth2.authorizationUrl({
        target,
        redirectUri: "https://keyway.example/cb",
        state: "s",
        codeChallenge: "c",
      }),
    ).toThrow(expect.objectContaining({ kind: "permanent", code: "client_not_configured" }));
    const refresh = await failure(
      oauth2.refresh({ target, refreshToken: "r", fetch: globalThis.fetch, clock }),
    );
    expect({ kind: refresh.kind, code: refresh.code }).toEqual({
      kind: "permanent",
      code: "client_not_configured",
    });
    expect(received).toBeUndefined();
  });
});

describe("http-api authorization code", () => {
  const oauth2 = httpApiDefinition.oauth2;
  const target = {
    id: "tgt_1",
    targetKey: "acme",
    config: targetConfig({
      tokenUrl: TOKEN_URL,
      authorizationUrl: "https://auth.acme.example/authorize?tenant=t1",
      clientId: "keyway-client",
      scopes: ["read", "write"],
    }),
    secrets: { clientSecret: "client-secret-value" },
  };

  it("builds the authorization URL with PKCE S256, keeping the configured query", () => {
    const url = new URL(
      oauth2?.authorizationUrl({
        target,
        redirectUri: "https://keyway.example/cb",
        state: "state-1",
        codeChallenge: "challenge-1",
      }) ?? "",
    );
    expect(Object.fromEntries(url.searchParams)).toEqual({
      tenant: "t1",
      response_type: "code",
      client_id: "keyway-client",
      redirect_uri: "https://keyway.example/cb",
      scope: "read write",
      state: "state-1",
      code_challenge: "challenge-1",
      code_challenge_method: "S256",
    });
  });

  it("exchanges the code with the verifier and refreshes, authenticating with HTTP Basic", async () => {
    answer = () =>
      HttpResponse.json({ access_token: "at-1", refresh_token: "rt-2", expires_in: 600 });
    const tokens = await oauth2?.exchangeCode({
      target,
      code: "code-1",
      redirectUri: "https://keyway.example/cb",
      codeVerifier: "verifier-1",
      fetch: globalThis.fetch,
      clock,
    });
    expect(tokens).toMatchObject({ accessToken: "at-1", refreshToken: "rt-2" });
    expect(received).toMatchObject({
      authorization: `Basic ${Buffer.from("keyway-client:client-secret-value").toString("base64")}`,
      form: {
        grant_type: "authorization_code",
        code: "code-1",
        redirect_uri: "https://keyway.example/cb",
        code_verifier: "verifier-1",
      },
    });
    await oauth2?.refresh({ target, refreshToken: "rt-2", fetch: globalThis.fetch, clock });
    expect(received?.form).toEqual({ grant_type: "refresh_token", refresh_token: "rt-2" });
  });
});

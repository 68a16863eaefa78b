import { createHash, randomBytes } from "node:crypto";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { createRemoteJWKSet, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOidcVerifier } from "../auth/oidc";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";

/**
 * Console sign-in through OIDC (authorization code + PKCE) against an authorization server on
 * loopback: it redirects back with a code, and its token endpoint checks the PKCE verifier
 * before issuing an access token (a JWT the API accepts as a bearer token).
 */
const CLIENT_ID = "keyway-console";
const AUDIENCE = "keyway-api";
const clock = createTestClock();

let t: TestApp;
let idp: RunningServer;
let organizationId: string;
const tokenRequests: URLSearchParams[] = [];

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  const codes = new Map<string, { challenge: string; redirectUri: string }>();
  idp = await startHttpServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://idp");
    if (url.pathname === "/jwks.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [publicJwk] }));
      return;
    }
    if (url.pathname === "/authorize") {
      // Consent is implied: the test user is already signed in at the provider.
      const code = randomBytes(16).toString("hex");
      codes.set(code, {
        challenge: url.searchParams.get("code_challenge") ?? "",
        redirectUri: url.searchParams.get("redirect_uri") ?? "",
      });
      const back = new URL(url.searchParams.get("redirect_uri") ?? "");
      back.searchParams.set("code", code);
      back.searchParams.set("state", url.searchParams.get("state") ?? "");
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (url.pathname === "/token") {
      let body = "";
      for await (const chunk of req) body += String(chunk);
      const form = new URLSearchParams(body);
      tokenRequests.push(form);
      const issued = codes.get(form.get("code") ?? "");
      codes.delete(form.get("code") ?? "");
      const verifier = form.get("code_verifier") ?? "";
      const challenge = createHash("sha256").update(verifier).digest("base64url");
      if (
        !issued ||
        issued.challenge !== challenge ||
        issued.redirectUri !== form.get("redirect_uri") ||
        form.get("client_id") !== CLIENT_ID
      ) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "invalid_grant" }));
        return;
      }
      const accessToken = await new SignJWT({ org_id: organizationId, role: "admin" })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setIssuer(idp.url)
        .setAudience(AUDIENCE)
        .setSubject("user-7")
        .setIssuedAt()
        .setExpirationTime("10m")
        .sign(privateKey);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: accessToken, token_type: "Bearer", expires_in: 600 }));
      return;
    }
    res.writeHead(404).end();
  });
  t = await createTestApp({
    clock,
    oidc: createOidcVerifier({
      issuer: idp.url,
      audience: AUDIENCE,
      getKey: createRemoteJWKSet(new URL(`${idp.url}/jwks.json`)),
      orgClaim: "org_id",
      roleClaim: "role",
      roleMap: {},
      clock,
    }),
    consoleOidc: {
      clientId: CLIENT_ID,
      scopes: "openid",
      authorizationEndpoint: `${idp.url}/authorize`,
      tokenEndpoint: `${idp.url}/token`,
    },
  });
  organizationId = (await t.createOrganization("Federated Org")).id;
});

afterAll(async () => {
  await t?.close();
  await idp?.close();
});

/** `name=value` of each Set-Cookie, for the next request's Cookie header. */
function cookies(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((line) => line.split(";")[0])
    .join("; ");
}

async function startSignIn(): Promise<{ callback: string; cookie: string }> {
  const start = await t.app.request("/console/sign-in/oidc");
  expect(start.status).toBe(303);
  const authorize = new URL(start.headers.get("location") ?? "");
  expect(authorize.origin).toBe(idp.url);
  expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
  expect(authorize.searchParams.get("client_id")).toBe(CLIENT_ID);
  const atProvider = await fetch(authorize, { redirect: "manual" });
  expect(atProvider.status).toBe(302);
  const back = new URL(atProvider.headers.get("location") ?? "");
  expect(back.pathname).toBe("/console/sign-in/oidc/callback");
  return { callback: `${back.pathname}${back.search}`, cookie: cookies(start) };
}

describe("console sign-in with OIDC", () => {
  it("offers the identity provider on the sign-in page", async () => {
    const page = await t.app.request("/console/sign-in");
    expect(await page.text()).toContain('href="/console/sign-in/oidc"');
  });

  it("signs in through the provider and then calls the API with its access token", async () => {
    const { callback, cookie } = await startSignIn();
    const done = await t.app.request(callback, { headers: { cookie } });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/console");
    const session = cookies(done)
      .split("; ")
      .find((c) => c.startsWith("keyway_console="));
    expect(session).toBeDefined();
    const verifier = tokenRequests.at(-1)?.get("code_verifier") ?? "";
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43,}$/);

    const page = await t.app.request("/console/connections", {
      headers: { cookie: session ?? "" },
    });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Federated Org");
  });

  it("refuses a callback whose state is not the one this browser started, writing no session", async () => {
    const { callback } = await startSignIn();
    const { cookie: otherBrowser } = await startSignIn();
    const refused = await t.app.request(callback, { headers: { cookie: otherBrowser } });
    expect(refused.status).toBe(401);
    expect(refused.headers.getSetCookie().some((c) => c.startsWith("keyway_console="))).toBe(false);
    const noCookie = await t.app.request((await startSignIn()).callback);
    expect(noCookie.status).toBe(401);
  });
});

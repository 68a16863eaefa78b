import { startHttpServer } from "@keyway/test-harness";
import { createRemoteJWKSet, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import { createOidcVerifier } from "./oidc";

const ISSUER = "https://idp.example.test";
const AUDIENCE = "keyway-api";

let t: TestApp;
let jwks: Awaited<ReturnType<typeof startHttpServer>>;
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
let organizationId: string;
const clock = createTestClock();

beforeAll(async () => {
  const pair = await generateKeyPair("RS256");
  privateKey = pair.privateKey;
  const publicJwk = {
    ...(await exportJWK(pair.publicKey)),
    kid: "idp-key-1",
    alg: "RS256",
    use: "sig",
  };
  // A real JWKS endpoint on loopback, the way an identity provider publishes its keys.
  jwks = await startHttpServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [publicJwk] }));
  });
  t = await createTestApp({
    clock,
    oidc: createOidcVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      getKey: createRemoteJWKSet(new URL(`${jwks.url}/jwks.json`)),
      orgClaim: "org_id",
      roleClaim: "keyway_role",
      roleMap: { "keyway-admins": "admin" },
      clock,
    }),
  });
  organizationId = (await t.createOrganization("OIDC Org")).id;
});

afterAll(async () => {
  await t.close();
  await jwks.close();
});

async function idToken(
  claims: JWTPayload,
  options: { issuer?: string; audience?: string; expiresInS?: number } = {},
) {
  const now = Math.floor(clock.now().getTime() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: "idp-key-1" })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setSubject("user-42")
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresInS ?? 300))
    .sign(privateKey);
}

describe("OIDC bearer tokens", () => {
  it("accepts a good token and maps org and role claims", async () => {
    const token = await idToken({ org_id: organizationId, keyway_role: "member" });
    const me = await t.call("GET", "/v1/organization", token);
    expect(me.status).toBe(200);
    expect(me.body.id).toBe(organizationId);
    // member: can read, cannot manage tokens
    expect((await t.call("GET", "/v1/api-tokens", token)).status).toBe(403);
    const admin = await idToken({ org_id: organizationId, keyway_role: "keyway-admins" });
    expect((await t.call("GET", "/v1/api-tokens", admin)).status).toBe(200);
  });

  it("refuses a wrong audience, a wrong issuer, an expired token and an unknown organization", async () => {
    const claims = { org_id: organizationId, keyway_role: "member" };
    const cases = [
      await idToken(claims, { audience: "someone-else" }),
      await idToken(claims, { issuer: "https://evil.example.test" }),
      await idToken(claims, { expiresInS: -60 }),
      await idToken({ org_id: "org_00000000000000000000000000", keyway_role: "member" }),
      await idToken({ org_id: organizationId, keyway_role: "superuser" }),
    ];
    for (const token of cases) {
      const response = await t.call("GET", "/v1/organization", token);
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe("unauthorized");
    }
  });

  it("refuses a token signed by another key", async () => {
    const other = await generateKeyPair("RS256");
    const now = Math.floor(clock.now().getTime() / 1000);
    const forged = await new SignJWT({ org_id: organizationId, keyway_role: "admin" })
      .setProtectedHeader({ alg: "RS256", kid: "idp-key-1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject("mallory")
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(other.privateKey);
    expect((await t.call("GET", "/v1/organization", forged)).status).toBe(401);
  });
});

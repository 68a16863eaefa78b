import { sign } from "node:crypto";
import { createLocalJWKSet, decodeProtectedHeader, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import type { Clock } from "./clock";
import {
  createSessionTokenSigner,
  createSessionTokenVerifier,
  type SessionTokenClaims,
  TokenError,
} from "./session-tokens";
import { generateSigningKeyPair, privateKeyObject } from "./signing-keys";

class SetClock implements Clock {
  constructor(private instant: Date) {}
  now(): Date {
    return this.instant;
  }
  set(iso: string): void {
    this.instant = new Date(iso);
  }
}

const issuer = "https://keyway.test";
const audience = "keyway-gateway";
const claims: SessionTokenClaims = {
  sessionId: "sess_01",
  organizationId: "org_01",
  planDigest: "sha256:abc",
  profileVersionId: "pver_01",
  expiresAt: new Date("2030-01-01T00:15:00Z"),
};

async function setup() {
  const clock = new SetClock(new Date("2030-01-01T00:00:00Z"));
  const oldKey = await generateSigningKeyPair();
  const newKey = await generateSigningKeyPair();
  const signer = (currentKid: string, keys = [oldKey, newKey]) =>
    createSessionTokenSigner({ keys, currentKid, issuer, audience, clock });
  return { clock, oldKey, newKey, signer };
}

async function tokenError(promise: Promise<unknown>): Promise<TokenError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (error instanceof TokenError) return error;
  throw new Error(`expected a TokenError, got ${String(error)}`);
}

describe("session tokens", () => {
  it("signs EdDSA JWTs that the verifier accepts through the published JWKS", async () => {
    const { clock, oldKey, signer } = await setup();
    const tokenSigner = signer(oldKey.kid);
    const token = await tokenSigner.sign(claims);
    expect(decodeProtectedHeader(token)).toEqual({
      alg: "EdDSA",
      kid: oldKey.kid,
      typ: "kw-session+jwt",
    });

    const jwks = tokenSigner.jwks();
    expect(jwks.keys.map((key) => key.kid)).toHaveLength(2);
    expect(JSON.stringify(jwks)).not.toContain(oldKey.privateJwk.d);

    const verifier = createSessionTokenVerifier({
      issuer,
      audience,
      getKey: createLocalJWKSet(jwks),
      clock,
    });
    const verified = await verifier.verify(token);
    expect(verified).toMatchObject(claims);
    expect(verified.tokenId).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it("refuses expired tokens with TOKEN_EXPIRED", async () => {
    const { clock, oldKey, signer } = await setup();
    const tokenSigner = signer(oldKey.kid);
    const token = await tokenSigner.sign(claims);
    const verifier = createSessionTokenVerifier({
      issuer,
      audience,
      getKey: createLocalJWKSet(tokenSigner.jwks()),
      clock,
    });
    clock.set("2030-01-01T00:15:04Z");
    await expect(verifier.verify(token)).resolves.toMatchObject({ sessionId: "sess_01" });
    clock.set("2030-01-01T00:15:06Z");
    expect((await tokenError(verifier.verify(token))).code).toBe("TOKEN_EXPIRED");
  });

  it("keeps verifying tokens of the previous key after rotation, until that key is dropped", async () => {
    const { clock, oldKey, newKey, signer } = await setup();
    const beforeRotation = await signer(oldKey.kid).sign(claims);
    const rotated = signer(newKey.kid);
    const afterRotation = await rotated.sign(claims);
    expect(decodeProtectedHeader(afterRotation).kid).toBe(newKey.kid);

    const verifierFor = (jwks: ReturnType<typeof rotated.jwks>) =>
      createSessionTokenVerifier({ issuer, audience, getKey: createLocalJWKSet(jwks), clock });
    const both = verifierFor(rotated.jwks());
    await expect(both.verify(beforeRotation)).resolves.toMatchObject({ sessionId: "sess_01" });
    await expect(both.verify(afterRotation)).resolves.toMatchObject({ sessionId: "sess_01" });

    const newOnly = verifierFor(signer(newKey.kid, [newKey]).jwks());
    await expect(newOnly.verify(afterRotation)).resolves.toMatchObject({ sessionId: "sess_01" });
    expect((await tokenError(newOnly.verify(beforeRotation))).code).toBe("TOKEN_INVALID");
  });

  it("refuses wrong issuer, audience, type, tampering and garbage with TOKEN_INVALID", async () => {
    const { clock, oldKey, signer } = await setup();
    const tokenSigner = signer(oldKey.kid);
    const getKey = createLocalJWKSet(tokenSigner.jwks());
    const verifier = createSessionTokenVerifier({ issuer, audience, getKey, clock });
    const token = await tokenSigner.sign(claims);

    const otherAudience = createSessionTokenVerifier({ issuer, audience: "other", getKey, clock });
    const otherIssuer = createSessionTokenVerifier({
      issuer: "https://evil",
      audience,
      getKey,
      clock,
    });
    expect((await tokenError(otherAudience.verify(token))).code).toBe("TOKEN_INVALID");
    expect((await tokenError(otherIssuer.verify(token))).code).toBe("TOKEN_INVALID");

    const [header, payload, signature] = token.split(".");
    const forgedPayload = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload ?? "", "base64url").toString()),
        org: "org_02",
      }),
    ).toString("base64url");
    expect(
      (await tokenError(verifier.verify(`${header}.${forgedPayload}.${signature}`))).code,
    ).toBe("TOKEN_INVALID");
    expect((await tokenError(verifier.verify("not.a.jwt"))).code).toBe("TOKEN_INVALID");

    // Same key, same claims, but not typed as a session token (e.g. another kind of JWT).
    const untyped = await new SignJWT({ org: "org_01", pln: "d", pv: "p" })
      .setProtectedHeader({ alg: "EdDSA", kid: oldKey.kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject("sess_01")
      .setIssuedAt(epoch("2030-01-01T00:00:00Z"))
      .setExpirationTime(epoch("2030-01-01T00:10:00Z"))
      .setJti("j")
      .sign(privateKeyObject(oldKey.privateJwk));
    expect((await tokenError(verifier.verify(untyped))).code).toBe("TOKEN_INVALID");
  });

  it("reads claims as JWT has them: an audience list, nbf, and no unknown critical header", async () => {
    const { clock, oldKey, signer } = await setup();
    const getKey = createLocalJWKSet(signer(oldKey.kid).jwks());
    const verifier = createSessionTokenVerifier({ issuer, audience, getKey, clock });
    const byJose = (extra: { aud?: string[]; nbf?: number; crit?: string[] } = {}) =>
      new SignJWT({ org: "org_01", pln: "d", pv: "p", ...(extra.nbf ? { nbf: extra.nbf } : {}) })
        .setProtectedHeader({
          alg: "EdDSA",
          kid: oldKey.kid,
          typ: "kw-session+jwt",
          ...(extra.crit ? { crit: extra.crit, b64: true } : {}),
        })
        .setIssuer(issuer)
        .setAudience(extra.aud ?? audience)
        .setSubject("sess_01")
        .setIssuedAt(epoch("2030-01-01T00:00:00Z"))
        .setExpirationTime(epoch("2030-01-01T00:10:00Z"))
        .setJti("j")
        .sign(privateKeyObject(oldKey.privateJwk));
    await expect(
      verifier.verify(await byJose({ aud: ["other", audience] })),
    ).resolves.toMatchObject({ sessionId: "sess_01", planDigest: "d" });
    const notYet = await byJose({ nbf: epoch("2030-01-01T00:01:00Z") });
    expect((await tokenError(verifier.verify(notYet))).code).toBe("TOKEN_INVALID");
    const critical = await byJose({ crit: ["b64"] });
    expect((await tokenError(verifier.verify(critical))).code).toBe("TOKEN_INVALID");
    // Expiry is judged before the session claims, as JWT verification does: an expired token is
    // reported expired even when its session claims are empty too.
    clock.set("2030-01-01T00:20:00Z");
    const expiredAndEmpty = await new SignJWT({ org: "org_01", pln: "d", pv: "" })
      .setProtectedHeader({ alg: "EdDSA", kid: oldKey.kid, typ: "kw-session+jwt" })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject("sess_01")
      .setIssuedAt(epoch("2030-01-01T00:00:00Z"))
      .setExpirationTime(epoch("2030-01-01T00:10:00Z"))
      .setJti("j")
      .sign(privateKeyObject(oldKey.privateJwk));
    expect((await tokenError(verifier.verify(expiredAndEmpty))).code).toBe("TOKEN_EXPIRED");
  });

  it("refuses every header and claim that is missing, mistyped or empty, signature valid", async () => {
    const { clock, oldKey, signer } = await setup();
    const getKey = createLocalJWKSet(signer(oldKey.kid).jwks());
    const verifier = createSessionTokenVerifier({ issuer, audience, getKey, clock });
    const key = privateKeyObject(oldKey.privateJwk);
    /** A token signed over exactly this header and payload JSON text. */
    const signRaw = (headerJson: string, payloadJson: string) => {
      const input = `${Buffer.from(headerJson).toString("base64url")}.${Buffer.from(payloadJson).toString("base64url")}`;
      return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
    };
    const header = { alg: "EdDSA", kid: oldKey.kid, typ: "kw-session+jwt" };
    const payload = {
      iss: issuer,
      aud: audience,
      sub: "sess_01",
      iat: epoch("2030-01-01T00:00:00Z"),
      exp: epoch("2030-01-01T00:10:00Z"),
      jti: "j",
      org: "org_01",
      pln: "sha256:abc",
      pv: "pver_01",
    };
    const raw = (h: object, p: object) => signRaw(JSON.stringify(h), JSON.stringify(p));
    // The same construction with nothing wrong verifies: what follows fails for its one change.
    await expect(verifier.verify(raw(header, payload))).resolves.toMatchObject({
      sessionId: "sess_01",
      organizationId: "org_01",
      planDigest: "sha256:abc",
      profileVersionId: "pver_01",
      tokenId: "j",
      expiresAt: new Date("2030-01-01T00:10:00Z"),
    });
    const bad: [string, string][] = [
      [JSON.stringify({ ...header, alg: "ES256" }), JSON.stringify(payload)],
      [JSON.stringify({ ...header, typ: "JWT" }), JSON.stringify(payload)],
      [JSON.stringify({ alg: "EdDSA", kid: oldKey.kid }), JSON.stringify(payload)],
      [JSON.stringify({ ...header, crit: [] }), JSON.stringify(payload)],
      [JSON.stringify(header), JSON.stringify({ ...payload, iss: 1 })],
      [JSON.stringify(header), JSON.stringify({ ...payload, aud: [audience, 7] })],
      [JSON.stringify(header), JSON.stringify({ ...payload, aud: { value: audience } })],
      [JSON.stringify(header), JSON.stringify({ ...payload, iat: undefined })],
      [JSON.stringify(header), JSON.stringify({ ...payload, iat: "2030" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, exp: "1893456600" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, nbf: "0" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, nbf: null })],
      // `1e999` is valid JSON that parses to Infinity: no number claim may be infinite.
      [JSON.stringify(header), JSON.stringify(payload).replace(/"exp":\d+/, '"exp":1e999')],
      [JSON.stringify(header), JSON.stringify({ ...payload, sub: "" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, sub: undefined })],
      [JSON.stringify(header), JSON.stringify({ ...payload, org: "" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, pln: undefined })],
      [JSON.stringify(header), JSON.stringify({ ...payload, pv: 3 })],
      [JSON.stringify(header), JSON.stringify({ ...payload, jti: "" })],
      [JSON.stringify(header), JSON.stringify({ ...payload, jti: undefined })],
    ];
    for (const [h, p] of bad) {
      const error = await tokenError(verifier.verify(signRaw(h, p)));
      expect({ h, p, code: error.code }).toEqual({ h, p, code: "TOKEN_INVALID" });
    }
  });

  it("refuses to sign an already expired token and a current kid that is not configured", async () => {
    const { clock, oldKey, signer } = await setup();
    clock.set("2030-01-01T00:20:00Z");
    await expect(signer(oldKey.kid).sign(claims)).rejects.toThrow(TypeError);
    expect(() => signer("missing")).toThrow(/not among the keys/);
  });
});

function epoch(iso: string): number {
  return Date.parse(iso) / 1000;
}

import { jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import type { Clock } from "./clock";
import {
  createGatewayAssertionSigner,
  createGatewayAssertionVerifier,
  createMemorySpentAssertions,
  GatewayAssertionError,
  type GatewayAssertionVerifierOptions,
  signGatewayAssertion,
} from "./gateway-assertions";
import {
  generateSigningKeyPair,
  privateKeyObject,
  publicKeyObject,
  type SigningKeyPair,
} from "./signing-keys";

class SetClock implements Clock {
  constructor(private instant: Date) {}
  now(): Date {
    return this.instant;
  }
  set(iso: string): void {
    this.instant = new Date(iso);
  }
}

const audience = "https://keyway.test/internal/v1";

async function setup(overrides: Partial<GatewayAssertionVerifierOptions> = {}) {
  const clock = new SetClock(new Date("2030-01-01T00:00:00Z"));
  const gatewayA = await generateSigningKeyPair();
  const gatewayB = await generateSigningKeyPair();
  const verifier = createGatewayAssertionVerifier({
    trusted: [
      { gatewayId: "gw-a", publicJwk: gatewayA.publicJwk },
      { gatewayId: "gw-b", publicJwk: gatewayB.publicJwk },
    ],
    audience,
    clock,
    spentAssertions: createMemorySpentAssertions(clock),
    ...overrides,
  });
  const sign = (
    gatewayId: string,
    key: SigningKeyPair,
    extra: { ttlSeconds?: number; aud?: string } = {},
  ) =>
    signGatewayAssertion({
      gatewayId,
      privateJwk: key.privateJwk,
      kid: key.kid,
      audience: extra.aud ?? audience,
      clock,
      ...(extra.ttlSeconds !== undefined ? { ttlSeconds: extra.ttlSeconds } : {}),
    });
  /** Another verifier (another control-plane replica) with the same trust and `spentAssertions`. */
  const replica = (spentAssertions: GatewayAssertionVerifierOptions["spentAssertions"]) =>
    createGatewayAssertionVerifier({
      trusted: [{ gatewayId: "gw-a", publicJwk: gatewayA.publicJwk }],
      audience,
      clock,
      spentAssertions,
    });
  return { clock, gatewayA, gatewayB, verifier, sign, replica };
}

async function assertionError(promise: Promise<unknown>): Promise<GatewayAssertionError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (error instanceof GatewayAssertionError) return error;
  throw new Error(`expected a GatewayAssertionError, got ${String(error)}`);
}

describe("gateway assertions", () => {
  it("accepts a fresh assertion from a trusted gateway once", async () => {
    const { verifier, sign, gatewayA } = await setup();
    const token = await sign("gw-a", gatewayA);
    const verified = await verifier.verify(token);
    expect(verified.gatewayId).toBe("gw-a");
    expect(verified.expiresAt).toEqual(new Date("2030-01-01T00:01:00Z"));
    expect(verified.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);

    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_REPLAYED");
    // A new assertion from the same gateway is fine.
    await expect(verifier.verify(await sign("gw-a", gatewayA))).resolves.toMatchObject({
      gatewayId: "gw-a",
    });
  });

  it("signs a fresh single-use assertion on every call of one signer", async () => {
    const { clock, verifier, gatewayA } = await setup();
    const signer = createGatewayAssertionSigner({
      gatewayId: "gw-a",
      privateJwk: gatewayA.privateJwk,
      kid: gatewayA.kid,
      audience,
      clock,
    });
    const first = await signer.sign();
    clock.set("2030-01-01T00:00:10Z");
    const second = await signer.sign();
    expect(second).not.toBe(first);
    await expect(verifier.verify(first)).resolves.toMatchObject({ gatewayId: "gw-a" });
    // Its lifetime starts when it is signed, not when the signer was made.
    await expect(verifier.verify(second)).resolves.toMatchObject({
      expiresAt: new Date("2030-01-01T00:01:10Z"),
    });
    expect((await assertionError(verifier.verify(second))).code).toBe("ASSERTION_REPLAYED");
  });

  it("refuses an unknown gateway and a gateway signing with another gateway's key", async () => {
    const { verifier, sign, gatewayA } = await setup();
    const stranger = await generateSigningKeyPair();
    expect((await assertionError(verifier.verify(await sign("gw-x", stranger)))).code).toBe(
      "UNKNOWN_GATEWAY",
    );
    // gw-b's identity claimed with gw-a's key: the signature does not match gw-b's trusted key.
    expect((await assertionError(verifier.verify(await sign("gw-b", gatewayA)))).code).toBe(
      "ASSERTION_INVALID",
    );
  });

  it("refuses a wrong audience", async () => {
    const { verifier, sign, gatewayA } = await setup();
    const token = await sign("gw-a", gatewayA, { aud: "https://other/internal/v1" });
    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_INVALID");
  });

  it("refuses an expired assertion", async () => {
    const { clock, verifier, sign, gatewayA } = await setup();
    const token = await sign("gw-a", gatewayA);
    clock.set("2030-01-01T00:01:10Z");
    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_EXPIRED");
  });

  it("refuses an assertion whose lifetime exceeds the maximum", async () => {
    const { verifier, sign, gatewayA } = await setup({ maxTtlSeconds: 120 });
    await expect(
      verifier.verify(await sign("gw-a", gatewayA, { ttlSeconds: 120 })),
    ).resolves.toBeDefined();
    const error = await assertionError(
      verifier.verify(await sign("gw-a", gatewayA, { ttlSeconds: 121 })),
    );
    expect(error.code).toBe("ASSERTION_INVALID");
    expect(error.message).toContain("lifetime");
  });

  it("refuses an assertion issued in the future", async () => {
    const { clock, verifier, sign, gatewayA } = await setup();
    clock.set("2030-01-01T00:00:30Z");
    const token = await sign("gw-a", gatewayA);
    clock.set("2030-01-01T00:00:00Z");
    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_INVALID");
  });

  it("refuses algorithms other than EdDSA and unsigned tokens", async () => {
    const { verifier } = await setup();
    const hmac = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("gw-a")
      .setSubject("gw-a")
      .setAudience(audience)
      .setIssuedAt(Date.parse("2030-01-01T00:00:00Z") / 1000)
      .setExpirationTime(Date.parse("2030-01-01T00:01:00Z") / 1000)
      .setJti("j1")
      .sign(new TextEncoder().encode("a shared secret of thirty-two bytes!"));
    expect((await assertionError(verifier.verify(hmac))).code).toBe("ASSERTION_INVALID");

    const header = Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url");
    const payload = Buffer.from(
      JSON.stringify({ iss: "gw-a", sub: "gw-a", aud: audience }),
    ).toString("base64url");
    expect((await assertionError(verifier.verify(`${header}.${payload}.`))).code).toBe(
      "ASSERTION_INVALID",
    );
    expect((await assertionError(verifier.verify("garbage"))).code).toBe("ASSERTION_INVALID");
  });

  it("refuses an assertion whose subject is not the gateway", async () => {
    const { verifier, gatewayA } = await setup();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: gatewayA.kid, typ: "kw-gateway-assertion+jwt" })
      .setIssuer("gw-a")
      .setSubject("gw-b")
      .setAudience(audience)
      .setIssuedAt(Date.parse("2030-01-01T00:00:00Z") / 1000)
      .setExpirationTime(Date.parse("2030-01-01T00:01:00Z") / 1000)
      .setJti("j2")
      .sign(privateKeyObject(gatewayA.privateJwk));
    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_INVALID");
  });

  it("forgets spent ids only after their assertions can no longer verify", async () => {
    const { clock, verifier, sign, gatewayA } = await setup();
    const token = await sign("gw-a", gatewayA);
    await verifier.verify(token);
    clock.set("2030-01-01T00:02:00Z");
    // Triggers a sweep that drops the spent id; the replayed token is still refused, as expired.
    await verifier.verify(await sign("gw-a", gatewayA));
    expect((await assertionError(verifier.verify(token))).code).toBe("ASSERTION_EXPIRED");
  });

  it("refuses a replay at another verifier that shares its spent store", async () => {
    const { clock, sign, gatewayA, replica } = await setup();
    const shared = createMemorySpentAssertions(clock);
    const token = await sign("gw-a", gatewayA);
    await replica(shared).verify(token);
    expect((await assertionError(replica(shared).verify(token))).code).toBe("ASSERTION_REPLAYED");
  });

  it("spends an id only for an assertion that verifies", async () => {
    const { clock, sign, gatewayA, replica } = await setup();
    const verifier = replica(createMemorySpentAssertions(clock));
    const genuine = await sign("gw-a", gatewayA);
    // The same claims (same jti) under a signature that does not verify.
    const forged = `${genuine.slice(0, genuine.lastIndexOf(".") + 1)}${"A".repeat(86)}`;
    expect((await assertionError(verifier.verify(forged))).code).toBe("ASSERTION_INVALID");
    await expect(verifier.verify(genuine)).resolves.toMatchObject({ gatewayId: "gw-a" });
  });

  it("keeps a spent id until its assertion is past expiry and clock tolerance", async () => {
    const { clock, sign, gatewayA } = await setup();
    const claims: Date[] = [];
    const recording = createMemorySpentAssertions(clock);
    const verifier = createGatewayAssertionVerifier({
      trusted: [{ gatewayId: "gw-a", publicJwk: gatewayA.publicJwk }],
      audience,
      clock,
      clockToleranceSeconds: 7,
      spentAssertions: {
        claim(gatewayId, jti, forgetAfter) {
          claims.push(forgetAfter);
          return recording.claim(gatewayId, jti, forgetAfter);
        },
      },
    });
    await verifier.verify(await sign("gw-a", gatewayA));
    expect(claims).toEqual([new Date("2030-01-01T00:01:07Z")]);
  });
  it("is standard JWS both ways: jose verifies what the signer signs, and the verifier accepts jose's", async () => {
    const { clock, verifier, sign, gatewayA } = await setup();
    const token = await sign("gw-a", gatewayA);
    const { payload, protectedHeader } = await jwtVerify(
      token,
      publicKeyObject(gatewayA.publicJwk),
      {
        issuer: "gw-a",
        subject: "gw-a",
        audience,
        typ: "kw-gateway-assertion+jwt",
        algorithms: ["EdDSA"],
        currentDate: clock.now(),
      },
    );
    expect(protectedHeader.kid).toBe(gatewayA.kid);
    expect(payload.exp).toBe(Date.parse("2030-01-01T00:01:00Z") / 1000);

    const byJose = (claims: { aud?: string[]; nbf?: number; crit?: string[] } = {}) => {
      const jwt = new SignJWT(claims.nbf === undefined ? {} : { nbf: claims.nbf })
        .setProtectedHeader({
          alg: "EdDSA",
          kid: gatewayA.kid,
          typ: "kw-gateway-assertion+jwt",
          ...(claims.crit ? { crit: claims.crit, b64: true } : {}),
        })
        .setIssuer("gw-a")
        .setSubject("gw-a")
        .setAudience(claims.aud ?? audience)
        .setIssuedAt(Date.parse("2030-01-01T00:00:00Z") / 1000)
        .setExpirationTime(Date.parse("2030-01-01T00:01:00Z") / 1000)
        .setJti(`jose-${Math.random()}`);
      return jwt.sign(privateKeyObject(gatewayA.privateJwk));
    };
    await expect(verifier.verify(await byJose())).resolves.toMatchObject({ gatewayId: "gw-a" });
    // An audience list naming this control plane is accepted, as RFC 7519 allows.
    await expect(
      verifier.verify(await byJose({ aud: ["https://other/internal/v1", audience] })),
    ).resolves.toMatchObject({ gatewayId: "gw-a" });
    const notYet = await byJose({ nbf: Date.parse("2030-01-01T00:00:30Z") / 1000 });
    expect((await assertionError(verifier.verify(notYet))).code).toBe("ASSERTION_INVALID");
    // A critical header extension this verifier does not implement is refused.
    const critical = await byJose({ crit: ["b64"] });
    expect((await assertionError(verifier.verify(critical))).code).toBe("ASSERTION_INVALID");
  });
});

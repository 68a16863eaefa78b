import {
  createSessionTokenSigner,
  createSessionTokenVerifier,
  generateSigningKeyPair,
  type SessionTokenSigner,
  type SessionTokenVerifier,
} from "@keyway/crypto";
import { createLogger } from "@keyway/observability";
import { createLocalJWKSet, createRemoteJWKSet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { createInvalidationHub, type InvalidationHub } from "../invalidations";
import { createSessionLiveness } from "../session-liveness";
import { createAuthenticate, parseProxyAuthorization } from "./authenticate";

const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

describe("parseProxyAuthorization", () => {
  it("reads Basic session:<token> and Bearer <token>", () => {
    expect(parseProxyAuthorization(basic("session:abc.def.ghi"))).toBe("abc.def.ghi");
    expect(parseProxyAuthorization(`basic ${Buffer.from("session:t").toString("base64")}`)).toBe(
      "t",
    );
    expect(parseProxyAuthorization("Bearer abc.def")).toBe("abc.def");
    expect(parseProxyAuthorization("BEARER   abc  ")).toBe("abc");
  });

  it("refuses everything else", () => {
    for (const header of [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      "Digest abc",
      "Basic !!!",
      basic("other:abc"),
      basic("session"),
      basic("session:"),
      basic("session:has space"),
      "Bearer a b",
    ]) {
      expect(parseProxyAuthorization(header), String(header)).toBeNull();
    }
  });
});

describe("createAuthenticate", () => {
  let signer: SessionTokenSigner;
  let verifier: SessionTokenVerifier;
  let now = new Date("2026-11-22T10:00:00Z");
  const clock = { now: () => now };

  beforeAll(async () => {
    const key = await generateSigningKeyPair();
    signer = createSessionTokenSigner({
      keys: [{ privateJwk: key.privateJwk, kid: key.kid }],
      currentKid: key.kid,
      issuer: "kw",
      audience: "gw",
      clock,
    });
    verifier = createSessionTokenVerifier({
      issuer: "kw",
      audience: "gw",
      getKey: createLocalJWKSet(signer.jwks()),
      clock,
      clockToleranceSeconds: 0,
    });
  });

  const sign = (sessionId: string, minutes = 10) =>
    signer.sign({
      sessionId,
      organizationId: "org_1",
      planDigest: "d".repeat(64),
      profileVersionId: "pv_1",
      expiresAt: new Date(now.getTime() + minutes * 60_000),
    });

  /** Authenticate with liveness answered by a control plane that knows `notLive` sessions. */
  function authenticateWith(
    hub: InvalidationHub,
    options: { verifier?: SessionTokenVerifier } = {},
  ) {
    const notLive = new Set<string>();
    const liveness = createSessionLiveness({
      source: {
        checkSessions: async (ids) =>
          ids.map((sessionId) => ({ sessionId, live: !notLive.has(sessionId), expiresAt: null })),
      },
      clock,
      invalidations: hub,
      logger: createLogger({ level: "error", write: () => {} }),
    });
    const auth = createAuthenticate({
      verifier: options.verifier ?? verifier,
      clock,
      invalidations: hub,
      liveness,
    });
    return { auth, notLive };
  }

  async function refusal(promise: Promise<unknown>): Promise<GatewayError> {
    const error = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    if (!(error instanceof GatewayError)) throw new Error("expected a GatewayError");
    return error;
  }

  it("verifies a token, then serves it from cache until it expires", async () => {
    now = new Date("2026-11-22T10:00:00Z");
    const { auth } = authenticateWith(createInvalidationHub());
    const token = await sign("sess_1", 1);
    const session = await auth.authenticateSession(basic(`session:${token}`));
    expect(session).toMatchObject({
      sessionId: "sess_1",
      organizationId: "org_1",
      planDigest: "d".repeat(64),
    });
    expect(await auth.authenticateSession(basic(`session:${token}`))).toBe(session);
    expect(auth.cachedSession(basic(`session:${token}`))).toBe(session);
    expect((await auth.authenticateSession(`Bearer ${token}`)).sessionId).toBe("sess_1");

    now = new Date(now.getTime() + 61_000);
    expect(auth.cachedSession(basic(`session:${token}`))).toBeUndefined();
    const expired = await refusal(auth.authenticateSession(basic(`session:${token}`)));
    expect(expired).toMatchObject({ code: "proxy_auth_required", status: 407 });
    expect(expired.message).toContain("expired");
    expect(() => auth.ensureSessionLive(session)).toThrow("expired");
  });

  it("answers 407 for missing, malformed and forged tokens", async () => {
    now = new Date("2026-11-22T10:00:00Z");
    const { auth } = authenticateWith(createInvalidationHub());
    const token = await sign("sess_2");
    // Never verified: no session without the full check.
    expect(auth.cachedSession(`Bearer ${token}`)).toBeUndefined();
    expect(auth.cachedSession(undefined)).toBeUndefined();
    for (const header of [
      undefined,
      "",
      "Bearer nope",
      basic(`session:${token.slice(0, -3)}AAA`),
    ]) {
      const error = await refusal(auth.authenticateSession(header));
      expect(error.status, String(header)).toBe(407);
    }
  });

  it("refuses a revoked session at once, cached or not, and keeps refusing after a resync", async () => {
    now = new Date("2026-11-22T10:00:00Z");
    const hub = createInvalidationHub();
    const { auth } = authenticateWith(hub);
    const token = await sign("sess_3");
    const other = await sign("sess_4");
    const session = await auth.authenticateSession(`Bearer ${token}`);
    await auth.authenticateSession(`Bearer ${other}`);

    expect(auth.cachedSession(`Bearer ${token}`)).toBe(session);
    hub.publish({ type: "session.revoked", sessionId: "sess_3" });
    expect(auth.cachedSession(`Bearer ${token}`)).toBeUndefined();
    expect((await refusal(auth.authenticateSession(`Bearer ${token}`))).message).toBe(
      "session has been revoked",
    );
    expect(() => auth.ensureSessionLive(session)).toThrow("revoked");
    hub.resync();
    expect((await refusal(auth.authenticateSession(`Bearer ${token}`))).status).toBe(407);
    expect((await auth.authenticateSession(`Bearer ${other}`)).sessionId).toBe("sess_4");
  });

  it("refuses a valid token whose session the control plane says is not live", async () => {
    now = new Date("2026-11-22T10:00:00Z");
    const { auth, notLive } = authenticateWith(createInvalidationHub());
    notLive.add("sess_6");
    const token = await sign("sess_6");
    const error = await refusal(auth.authenticateSession(`Bearer ${token}`));
    expect(error).toMatchObject({ code: "proxy_auth_required", status: 407 });
    expect(auth.cachedSession(`Bearer ${token}`)).toBeUndefined();
  });

  it("maps an unreachable key set to 502, not 407", async () => {
    const unreachable = createSessionTokenVerifier({
      issuer: "kw",
      audience: "gw",
      // Port 1 on loopback: nothing listens, the key set cannot be fetched.
      getKey: createRemoteJWKSet(new URL("http://127.0.0.1:1/.well-known/jwks.json")),
      clock,
    });
    const { auth } = authenticateWith(createInvalidationHub(), { verifier: unreachable });
    const error = await refusal(auth.authenticateSession(`Bearer ${await sign("sess_5")}`));
    expect(error).toMatchObject({ code: "control_plane_unavailable", status: 502 });
  });
});

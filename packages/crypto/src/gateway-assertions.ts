import { randomBytes } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { type Clock, epochSeconds } from "./clock";
import {
  type Ed25519PrivateJwk,
  type Ed25519PublicJwk,
  privateKeyObject,
  publicKeyObject,
  SIGNING_ALGORITHM,
} from "./signing-keys";

/** JWT `typ` of gateway client assertions, so a session token can never pass for one. */
export const GATEWAY_ASSERTION_TYPE = "kw-gateway-assertion+jwt";

export interface SignGatewayAssertionOptions {
  gatewayId: string;
  privateJwk: Ed25519PrivateJwk;
  kid: string;
  /** The control plane's internal API, e.g. `https://keyway.example.com/internal/v1`. */
  audience: string;
  clock: Clock;
  ttlSeconds?: number;
}

/**
 * A client assertion for one request to the control plane's internal API (iss = sub = gateway id).
 * Each assertion is accepted once: sign a fresh one per request, including retries.
 */
export function signGatewayAssertion(options: SignGatewayAssertionOptions): Promise<string> {
  const ttlSeconds = options.ttlSeconds ?? 60;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new TypeError("gateway assertion ttlSeconds must be a positive integer");
  }
  const now = epochSeconds(options.clock.now());
  return new SignJWT({})
    .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid: options.kid, typ: GATEWAY_ASSERTION_TYPE })
    .setIssuer(options.gatewayId)
    .setSubject(options.gatewayId)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(randomBytes(16).toString("base64url"))
    .sign(privateKeyObject(options.privateJwk));
}

export type GatewayAssertionErrorCode =
  | "ASSERTION_INVALID"
  | "ASSERTION_EXPIRED"
  | "ASSERTION_REPLAYED"
  | "UNKNOWN_GATEWAY";

export class GatewayAssertionError extends Error {
  override readonly name = "GatewayAssertionError";
  constructor(
    readonly code: GatewayAssertionErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface GatewayAssertionVerifierOptions {
  trusted: readonly { gatewayId: string; publicJwk: Ed25519PublicJwk }[];
  /** Must equal the `aud` gateways sign for. */
  audience: string;
  clock: Clock;
  /** Longest accepted `exp - iat`. Default 300 seconds. */
  maxTtlSeconds?: number;
  /** Accepted clock skew between gateway and control plane. Default 5 seconds. */
  clockToleranceSeconds?: number;
}

export interface VerifiedGatewayAssertion {
  gatewayId: string;
  jti: string;
  expiresAt: Date;
}

export interface GatewayAssertionVerifier {
  verify(token: string): Promise<VerifiedGatewayAssertion>;
}

const assertionPayloadSchema = z.object({
  iss: z.string().min(1),
  iat: z.number(),
  exp: z.number(),
  jti: z.string().min(1).max(128),
});

/** How often spent jtis past their expiry are swept from the replay cache. */
const SWEEP_INTERVAL_MS = 30_000;

/**
 * Verifies gateway client assertions against the configured trusted keys.
 *
 * Replay protection keeps each accepted `jti` in memory until its assertion expires. The cache is
 * per control-plane process: with several API replicas, an assertion replayed to a different
 * replica within its lifetime (at most `maxTtlSeconds`, 60 s as gateways sign them) is not caught.
 * Short lifetimes and TLS between gateway and control plane bound that window.
 */
export function createGatewayAssertionVerifier(
  options: GatewayAssertionVerifierOptions,
): GatewayAssertionVerifier {
  const maxTtlSeconds = options.maxTtlSeconds ?? 300;
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  const keys = new Map(
    options.trusted.map(({ gatewayId, publicJwk }) => [gatewayId, publicKeyObject(publicJwk)]),
  );
  /** `gatewayId␟jti` → expiry in epoch milliseconds. */
  const spent = new Map<string, number>();
  let nextSweep = 0;

  function sweep(nowMs: number): void {
    if (nowMs < nextSweep) return;
    nextSweep = nowMs + SWEEP_INTERVAL_MS;
    for (const [key, expiresMs] of spent) {
      if (expiresMs + clockTolerance * 1000 < nowMs) spent.delete(key);
    }
  }

  return {
    async verify(token) {
      const now = options.clock.now();
      const issuer = unverifiedIssuer(token);
      const key = keys.get(issuer);
      if (!key)
        throw new GatewayAssertionError("UNKNOWN_GATEWAY", "assertion from an unknown gateway");

      let payload: unknown;
      try {
        ({ payload } = await jwtVerify(token, key, {
          issuer,
          subject: issuer,
          audience: options.audience,
          algorithms: [SIGNING_ALGORITHM],
          typ: GATEWAY_ASSERTION_TYPE,
          requiredClaims: ["iat", "exp", "jti"],
          // Also refuses an `iat` in the future (beyond the tolerance).
          maxTokenAge: maxTtlSeconds,
          currentDate: now,
          clockTolerance,
        }));
      } catch (error) {
        if (error instanceof errors.JWTExpired) {
          throw new GatewayAssertionError("ASSERTION_EXPIRED", "gateway assertion has expired");
        }
        if (error instanceof errors.JOSEError) {
          throw new GatewayAssertionError(
            "ASSERTION_INVALID",
            `gateway assertion is invalid (${error.code})`,
          );
        }
        throw error;
      }

      const claims = assertionPayloadSchema.safeParse(payload);
      if (!claims.success) {
        throw new GatewayAssertionError(
          "ASSERTION_INVALID",
          "gateway assertion claims are invalid",
        );
      }
      const { iat, exp, jti } = claims.data;
      if (exp - iat > maxTtlSeconds) {
        throw new GatewayAssertionError(
          "ASSERTION_INVALID",
          `gateway assertion lifetime ${exp - iat}s exceeds ${maxTtlSeconds}s`,
        );
      }

      const nowMs = now.getTime();
      sweep(nowMs);
      const spentKey = `${issuer}\u001f${jti}`;
      // Entries leave the cache only once jwtVerify would refuse the assertion as expired anyway.
      if (spent.has(spentKey)) {
        throw new GatewayAssertionError("ASSERTION_REPLAYED", "gateway assertion was already used");
      }
      spent.set(spentKey, exp * 1000);
      return { gatewayId: issuer, jti, expiresAt: new Date(exp * 1000) };
    },
  };
}

/** The `iss` before verification, only to pick the key; the signature check then binds it. */
function unverifiedIssuer(token: string): string {
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== SIGNING_ALGORITHM) {
      throw new GatewayAssertionError("ASSERTION_INVALID", "gateway assertion must use EdDSA");
    }
    const { iss } = decodeJwt(token);
    if (typeof iss === "string" && iss !== "") return iss;
  } catch (error) {
    if (error instanceof GatewayAssertionError) throw error;
  }
  throw new GatewayAssertionError("ASSERTION_INVALID", "gateway assertion is malformed");
}

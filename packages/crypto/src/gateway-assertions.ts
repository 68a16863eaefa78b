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
 * Each assertion is accepted once: sign a fresh one per request, including retries. Callers that
 * sign repeatedly keep a `createGatewayAssertionSigner` instead.
 */
export function signGatewayAssertion(options: SignGatewayAssertionOptions): Promise<string> {
  return createGatewayAssertionSigner(options).sign();
}

export interface GatewayAssertionSigner {
  /** A fresh assertion (new `jti`, `iat` from the clock now). */
  sign(): Promise<string>;
}

/**
 * Signs assertions with one key, imported once: jose caches the key it derives per key object, so
 * reusing it saves the import on every request (≈ 0.2 ms of CPU per assertion on the development
 * machine; `pnpm bench:resolve --concurrency`, where the gateways' side signs one per resolution).
 */
export function createGatewayAssertionSigner(
  options: SignGatewayAssertionOptions,
): GatewayAssertionSigner {
  const ttlSeconds = options.ttlSeconds ?? 60;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new TypeError("gateway assertion ttlSeconds must be a positive integer");
  }
  const key = privateKeyObject(options.privateJwk);
  return {
    sign() {
      const now = epochSeconds(options.clock.now());
      return new SignJWT({})
        .setProtectedHeader({
          alg: SIGNING_ALGORITHM,
          kid: options.kid,
          typ: GATEWAY_ASSERTION_TYPE,
        })
        .setIssuer(options.gatewayId)
        .setSubject(options.gatewayId)
        .setAudience(options.audience)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .setJti(randomBytes(16).toString("base64url"))
        .sign(key);
    },
  };
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
  /**
   * Where accepted assertion ids are remembered. With several control-plane replicas it must be
   * shared by all of them (the API keeps it in PostgreSQL), or an assertion replayed to another
   * replica is accepted there; `createMemorySpentAssertions` serves a single process.
   */
  spentAssertions: SpentAssertionStore;
}

/**
 * Assertion ids already accepted. `claim` records one and answers whether it was new (`false`: the
 * assertion is a replay). `forgetAfter` is the instant from which the assertion can no longer
 * verify (its `exp` plus the accepted clock skew): the id must be kept until then, and may be
 * dropped after, which bounds the store by the assertion rate times their lifetime.
 */
export interface SpentAssertionStore {
  claim(gatewayId: string, jti: string, forgetAfter: Date): Promise<boolean>;
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

/**
 * Verifies gateway client assertions against the configured trusted keys. Replay protection:
 * each accepted `jti` is claimed in `spentAssertions` after the signature and claims check out
 * (so only trusted gateways can add entries), and a second claim is refused.
 */
export function createGatewayAssertionVerifier(
  options: GatewayAssertionVerifierOptions,
): GatewayAssertionVerifier {
  const maxTtlSeconds = options.maxTtlSeconds ?? 300;
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  const keys = new Map(
    options.trusted.map(({ gatewayId, publicJwk }) => [gatewayId, publicKeyObject(publicJwk)]),
  );

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

      // Kept until jwtVerify would refuse the assertion as expired anyway.
      const forgetAfter = new Date((exp + clockTolerance) * 1000);
      if (!(await options.spentAssertions.claim(issuer, jti, forgetAfter))) {
        throw new GatewayAssertionError("ASSERTION_REPLAYED", "gateway assertion was already used");
      }
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

/** How often ids past `forgetAfter` are swept from the in-memory store. */
const SWEEP_INTERVAL_MS = 30_000;

/**
 * Spent assertion ids in this process's memory: for a single control-plane process and tests.
 * Replicas must share one store instead (the API's is in PostgreSQL).
 */
export function createMemorySpentAssertions(clock: Clock): SpentAssertionStore {
  /** `gatewayId␟jti` → `forgetAfter` in epoch milliseconds. */
  const spent = new Map<string, number>();
  let nextSweep = 0;
  return {
    async claim(gatewayId, jti, forgetAfter) {
      const nowMs = clock.now().getTime();
      if (nowMs >= nextSweep) {
        nextSweep = nowMs + SWEEP_INTERVAL_MS;
        for (const [key, untilMs] of spent) if (untilMs < nowMs) spent.delete(key);
      }
      const key = `${gatewayId}\u001f${jti}`;
      if (spent.has(key)) return false;
      spent.set(key, forgetAfter.getTime());
      return true;
    },
  };
}

import { randomBytes, sign as signBytes } from "node:crypto";
import { z } from "zod";
import { type Clock, epochSeconds } from "./clock";
import { decodeCompactJws, signedBy } from "./compact-jws";
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
 * Signs assertions with one key, imported once, through `node:crypto` directly: a synchronous
 * Ed25519 signature is ≈ 30 µs of CPU where jose's WebCrypto path (a job and promises per call)
 * cost ≈ 145 µs on the development machine, and a gateway signs one per internal request
 * (`pnpm bench:storm`, `pnpm bench:resolve --concurrency`). The compact JWS is the standard one:
 * jose (or any JOSE library) verifies it.
 */
export function createGatewayAssertionSigner(
  options: SignGatewayAssertionOptions,
): GatewayAssertionSigner {
  const ttlSeconds = options.ttlSeconds ?? 60;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new TypeError("gateway assertion ttlSeconds must be a positive integer");
  }
  const key = privateKeyObject(options.privateJwk);
  const header = base64url(
    JSON.stringify({ alg: SIGNING_ALGORITHM, kid: options.kid, typ: GATEWAY_ASSERTION_TYPE }),
  );
  return {
    async sign() {
      const now = epochSeconds(options.clock.now());
      const payload = base64url(
        JSON.stringify({
          iss: options.gatewayId,
          sub: options.gatewayId,
          aud: options.audience,
          iat: now,
          exp: now + ttlSeconds,
          jti: randomBytes(16).toString("base64url"),
        }),
      );
      const signingInput = `${header}.${payload}`;
      const signature = signBytes(null, Buffer.from(signingInput), key).toString("base64url");
      return `${signingInput}.${signature}`;
    },
  };
}

function base64url(text: string): string {
  return Buffer.from(text).toString("base64url");
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

const assertionHeaderSchema = z.looseObject({
  alg: z.literal(SIGNING_ALGORITHM),
  typ: z.literal(GATEWAY_ASSERTION_TYPE),
  // No extension this verifier would have to understand (RFC 7515 §4.1.11).
  crit: z.never().optional(),
});

const assertionPayloadSchema = z.looseObject({
  iss: z.string().min(1),
  sub: z.string().min(1),
  aud: z.union([z.string(), z.array(z.string())]),
  iat: z.number(),
  exp: z.number(),
  nbf: z.number().optional(),
  jti: z.string().min(1).max(128),
});

type AssertionPayload = z.infer<typeof assertionPayloadSchema>;

/**
 * Verifies gateway client assertions against the configured trusted keys, with `node:crypto`
 * (`compact-jws.ts`: the control plane verifies one per internal request). The
 * checks are JWT's (RFC 7519) for this one shape of token: EdDSA only, `typ`
 * `kw-gateway-assertion+jwt`, `iss` = `sub` = a trusted gateway, `aud`, `iat`, `exp` and `jti`
 * required, `nbf` honoured, clock skew tolerated both ways.
 *
 * Replay protection: each accepted `jti` is claimed in `spentAssertions` after the signature and
 * claims check out (so only trusted gateways can add entries), and a second claim is refused.
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
      const now = epochSeconds(options.clock.now());
      const jws = decodeCompactJws(token);
      if (jws === null) {
        throw new GatewayAssertionError("ASSERTION_INVALID", "gateway assertion is malformed");
      }
      if (!assertionHeaderSchema.safeParse(jws.header).success) {
        throw new GatewayAssertionError(
          "ASSERTION_INVALID",
          "gateway assertion must be an EdDSA kw-gateway-assertion+jwt",
        );
      }
      const parsed = assertionPayloadSchema.safeParse(jws.payload);
      if (!parsed.success) {
        throw new GatewayAssertionError(
          "ASSERTION_INVALID",
          "gateway assertion claims are invalid",
        );
      }
      const claims = parsed.data;
      const key = keys.get(claims.iss);
      if (!key)
        throw new GatewayAssertionError("UNKNOWN_GATEWAY", "assertion from an unknown gateway");
      if (!signedBy(jws, key)) {
        throw new GatewayAssertionError(
          "ASSERTION_INVALID",
          "gateway assertion signature does not verify",
        );
      }
      checkClaims(claims, now);

      // Kept until the assertion would be refused as expired anyway.
      const forgetAfter = new Date((claims.exp + clockTolerance) * 1000);
      if (!(await options.spentAssertions.claim(claims.iss, claims.jti, forgetAfter))) {
        throw new GatewayAssertionError("ASSERTION_REPLAYED", "gateway assertion was already used");
      }
      return { gatewayId: claims.iss, jti: claims.jti, expiresAt: new Date(claims.exp * 1000) };
    },
  };

  /** The claims of a genuinely signed assertion: who, for whom, and when. */
  function checkClaims(claims: AssertionPayload, now: number): void {
    const invalid = (why: string) =>
      new GatewayAssertionError("ASSERTION_INVALID", `gateway assertion ${why}`);
    if (claims.sub !== claims.iss) throw invalid("subject is not its issuer");
    const audiences = typeof claims.aud === "string" ? [claims.aud] : claims.aud;
    if (!audiences.includes(options.audience)) throw invalid("is for another audience");
    if (claims.exp <= now - clockTolerance) {
      throw new GatewayAssertionError("ASSERTION_EXPIRED", "gateway assertion has expired");
    }
    if (claims.iat > now + clockTolerance) throw invalid("is issued in the future");
    if (now - claims.iat - clockTolerance > maxTtlSeconds) {
      throw new GatewayAssertionError("ASSERTION_EXPIRED", "gateway assertion is too old");
    }
    if (claims.nbf !== undefined && claims.nbf > now + clockTolerance) {
      throw invalid("is not valid yet");
    }
    if (claims.exp - claims.iat > maxTtlSeconds) {
      throw invalid(`lifetime ${claims.exp - claims.iat}s exceeds ${maxTtlSeconds}s`);
    }
  }
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

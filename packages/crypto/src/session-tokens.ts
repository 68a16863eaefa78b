import { randomBytes } from "node:crypto";
import { errors, type JWTVerifyGetKey, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { type Clock, epochSeconds } from "./clock";
import {
  type Ed25519PrivateJwk,
  type Ed25519PublicJwk,
  privateKeyObject,
  publicJwkOf,
  SIGNING_ALGORITHM,
} from "./signing-keys";

/** JWT `typ` of sandbox session tokens (RFC 8725 explicit typing): no other JWT passes for one. */
export const SESSION_TOKEN_TYPE = "kw-session+jwt";

export interface SessionTokenClaims {
  sessionId: string;
  organizationId: string;
  /** Digest of the compiled plan the session runs. */
  planDigest: string;
  profileVersionId: string;
  expiresAt: Date;
}

export interface VerifiedSessionToken extends SessionTokenClaims {
  /** The token's `jti`, unique per issued token (for audit). */
  tokenId: string;
}

export type TokenErrorCode = "TOKEN_INVALID" | "TOKEN_EXPIRED";

/** A token that must be refused. Infrastructure failures (JWKS unreachable) are not TokenErrors. */
export class TokenError extends Error {
  override readonly name = "TokenError";
  constructor(
    readonly code: TokenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface PublicJwks {
  keys: (Ed25519PublicJwk & { kid: string; alg: "EdDSA"; use: "sig" })[];
}

export interface SessionTokenSignerOptions {
  /** Every key whose tokens may still be live; all are published in `jwks()`. */
  keys: readonly { privateJwk: Ed25519PrivateJwk; kid: string }[];
  /** The key new tokens are signed with. */
  currentKid: string;
  issuer: string;
  audience: string;
  clock: Clock;
}

export interface SessionTokenSigner {
  sign(claims: SessionTokenClaims): Promise<string>;
  /** Public keys of all configured keys, for `GET /.well-known/jwks.json`. */
  jwks(): PublicJwks;
}

/**
 * Key rotation: add the new key to `keys` (it is published at once), switch `currentKid` to it once
 * gateways have had time to refetch the JWKS, and drop the old key after the longest token
 * lifetime has passed.
 */
export function createSessionTokenSigner(options: SessionTokenSignerOptions): SessionTokenSigner {
  const kids = new Set<string>();
  for (const { kid } of options.keys) {
    if (kids.has(kid)) throw new TypeError(`session signing key ids must be unique: ${kid}`);
    kids.add(kid);
  }
  const current = options.keys.find((key) => key.kid === options.currentKid);
  if (!current) {
    throw new TypeError(`current session signing key ${options.currentKid} is not among the keys`);
  }
  const signingKey = privateKeyObject(current.privateJwk);
  const publicJwks: PublicJwks = Object.freeze({
    keys: options.keys.map(({ privateJwk, kid }): PublicJwks["keys"][number] => ({
      ...publicJwkOf(privateJwk),
      kid,
      alg: SIGNING_ALGORITHM,
      use: "sig",
    })),
  });

  return {
    async sign(claims) {
      const now = epochSeconds(options.clock.now());
      const exp = epochSeconds(claims.expiresAt);
      if (exp <= now) throw new TypeError("session token expiry must be in the future");
      return new SignJWT({
        org: claims.organizationId,
        pln: claims.planDigest,
        pv: claims.profileVersionId,
      })
        .setProtectedHeader({ alg: SIGNING_ALGORITHM, kid: current.kid, typ: SESSION_TOKEN_TYPE })
        .setIssuer(options.issuer)
        .setAudience(options.audience)
        .setSubject(claims.sessionId)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .setJti(randomBytes(16).toString("base64url"))
        .sign(signingKey);
    },
    jwks: () => publicJwks,
  };
}

export interface SessionTokenVerifierOptions {
  issuer: string;
  audience: string;
  /** jose `createLocalJWKSet(jwks)` or `createRemoteJWKSet(url)` (cached, refetches on unknown kid). */
  getKey: JWTVerifyGetKey;
  clock: Clock;
  /** Accepted clock skew between the signer and this verifier. Default 5 seconds. */
  clockToleranceSeconds?: number;
}

export interface SessionTokenVerifier {
  verify(token: string): Promise<VerifiedSessionToken>;
}

const nonEmpty = z.string().min(1);
const sessionPayloadSchema = z.object({
  sub: nonEmpty,
  org: nonEmpty,
  pln: nonEmpty,
  pv: nonEmpty,
  exp: z.number(),
  jti: nonEmpty,
});

export function createSessionTokenVerifier(
  options: SessionTokenVerifierOptions,
): SessionTokenVerifier {
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  return {
    async verify(token) {
      let payload: unknown;
      try {
        ({ payload } = await jwtVerify(token, options.getKey, {
          issuer: options.issuer,
          audience: options.audience,
          algorithms: [SIGNING_ALGORITHM],
          typ: SESSION_TOKEN_TYPE,
          requiredClaims: ["sub", "iat", "exp", "jti"],
          currentDate: options.clock.now(),
          clockTolerance,
        }));
      } catch (error) {
        throw toTokenError(error);
      }
      const claims = sessionPayloadSchema.safeParse(payload);
      if (!claims.success)
        throw new TokenError("TOKEN_INVALID", "session token claims are invalid");
      return {
        sessionId: claims.data.sub,
        organizationId: claims.data.org,
        planDigest: claims.data.pln,
        profileVersionId: claims.data.pv,
        expiresAt: new Date(claims.data.exp * 1000),
        tokenId: claims.data.jti,
      };
    },
  };
}

const keySetOutageCodes = new Set(["ERR_JOSE_GENERIC", "ERR_JWKS_TIMEOUT", "ERR_JWKS_INVALID"]);

function toTokenError(error: unknown): unknown {
  if (error instanceof errors.JWTExpired) {
    return new TokenError("TOKEN_EXPIRED", "session token has expired");
  }
  // A JWKS that cannot be fetched or read is an outage, not a bad token: let it surface as itself.
  if (!(error instanceof errors.JOSEError) || keySetOutageCodes.has(error.code)) return error;
  return new TokenError("TOKEN_INVALID", `session token is invalid (${error.code})`);
}

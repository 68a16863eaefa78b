import {
  createPublicKey,
  type JsonWebKey,
  KeyObject,
  randomBytes,
  type webcrypto,
} from "node:crypto";
import { errors, type JWTVerifyGetKey, SignJWT } from "jose";
import { z } from "zod";
import { type Clock, epochSeconds } from "./clock";
import { decodeCompactJws, signedBy } from "./compact-jws";
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
const sessionHeaderSchema = z.looseObject({
  alg: z.literal(SIGNING_ALGORITHM),
  typ: z.literal(SESSION_TOKEN_TYPE),
  // No extension this verifier would have to understand (RFC 7515 §4.1.11).
  crit: z.never().optional(),
});
/** The registered claims every JWT verification checks, expiry first of all. */
const registeredClaimsSchema = z.looseObject({
  iss: z.string(),
  aud: z.union([z.string(), z.array(z.string())]),
  sub: z.string(),
  iat: z.number(),
  exp: z.number(),
  nbf: z.number().optional(),
  jti: z.string(),
});
/** What makes it a session token, checked once it is known to be current. */
const sessionClaimsSchema = z.looseObject({
  sub: nonEmpty,
  org: nonEmpty,
  pln: nonEmpty,
  pv: nonEmpty,
  exp: z.number(),
  jti: nonEmpty,
});

/**
 * Verifies session tokens: the key comes from `getKey` (the JWKS, refetched by jose on an unknown
 * `kid`), the signature is checked with `node:crypto` (`compact-jws.ts`: a gateway verifies one
 * token per new session, and jose's WebCrypto path cost ≈ 2.5× the CPU), and the header and claims
 * as JWT (RFC 7519) has them: EdDSA, `typ` `kw-session+jwt`, `iss`, `aud`, `sub`, `iat`, `exp` and
 * `jti` required, `exp` and `nbf` with the clock tolerance.
 */
export function createSessionTokenVerifier(
  options: SessionTokenVerifierOptions,
): SessionTokenVerifier {
  const clockTolerance = options.clockToleranceSeconds ?? 5;
  /** Node key objects of the keys `getKey` hands out (the same object per key while cached). */
  const keyObjects = new WeakMap<object, KeyObject>();
  const invalid = (why: string) => new TokenError("TOKEN_INVALID", `session token ${why}`);

  function keyObjectOf(key: unknown): KeyObject {
    if (key instanceof KeyObject) return key;
    if (typeof key !== "object" || key === null || key instanceof Uint8Array) {
      throw invalid("key is not an Ed25519 public key");
    }
    let object = keyObjects.get(key);
    if (object === undefined) {
      object =
        // A CryptoKey (what jose's key sets hand out), else a JWK.
        "algorithm" in key && "usages" in key
          ? KeyObject.from(key as webcrypto.CryptoKey)
          : createPublicKey({ key: key as JsonWebKey, format: "jwk" });
      keyObjects.set(key, object);
    }
    if (object.asymmetricKeyType !== "ed25519") throw invalid("key is not an Ed25519 public key");
    return object;
  }

  return {
    async verify(token) {
      const now = epochSeconds(options.clock.now());
      const jws = decodeCompactJws(token);
      if (jws === null) throw invalid("is malformed");
      const header = sessionHeaderSchema.safeParse(jws.header);
      if (!header.success) throw invalid("is not an EdDSA kw-session+jwt");
      const [protectedPart = "", payloadPart = ""] = jws.signingInput.split(".");
      let key: KeyObject;
      try {
        key = keyObjectOf(
          await options.getKey(header.data, {
            protected: protectedPart,
            payload: payloadPart,
            signature: jws.signature.toString("base64url"),
          }),
        );
      } catch (error) {
        throw toTokenError(error);
      }
      if (!signedBy(jws, key)) throw invalid("signature does not verify");
      const registered = registeredClaimsSchema.safeParse(jws.payload);
      if (!registered.success) throw invalid("claims are invalid");
      const { iss, aud, exp, nbf } = registered.data;
      if (iss !== options.issuer) throw invalid("is from another issuer");
      if (!(typeof aud === "string" ? [aud] : aud).includes(options.audience)) {
        throw invalid("is for another audience");
      }
      if (exp <= now - clockTolerance) {
        throw new TokenError("TOKEN_EXPIRED", "session token has expired");
      }
      if (nbf !== undefined && nbf > now + clockTolerance) throw invalid("is not valid yet");
      const parsed = sessionClaimsSchema.safeParse(jws.payload);
      if (!parsed.success) throw invalid("claims are invalid");
      const claims = parsed.data;
      return {
        sessionId: claims.sub,
        organizationId: claims.org,
        planDigest: claims.pln,
        profileVersionId: claims.pv,
        expiresAt: new Date(claims.exp * 1000),
        tokenId: claims.jti,
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

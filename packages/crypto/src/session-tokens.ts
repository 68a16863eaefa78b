import {
  createPublicKey,
  type JsonWebKey,
  KeyObject,
  randomBytes,
  type webcrypto,
} from "node:crypto";
import { errors, type JWTVerifyGetKey, SignJWT } from "jose";
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

/**
 * The header and claims checks, written out rather than as zod schemas: a gateway verifies one
 * token per new session. In a Node 20 (V8 11.3) gateway's profile of `pnpm bench:storm` the
 * three `safeParse` calls were ≈ 35 µs of CPU per token, interleaved with 200 other new sessions'
 * work (zod's generated parsers cold in the caches); written out, `verify`'s work besides the
 * signature went from 53 to 22 ms over 600 tokens (docs/benchmarks.md, "storm-gw20"). In a hot
 * loop the two are alike. The rules are zod's: the header an EdDSA `kw-session+jwt` without
 * `crit` (no extension this verifier would have to understand, RFC 7515 §4.1.11); `iss`, `sub`,
 * `jti` strings, `aud` a string or a list of strings, `iat` and `exp` numbers, `nbf` a number when
 * present, every number finite (`1e999` is JSON for Infinity); then `sub`, `org`, `pln`, `pv` and
 * `jti` non-empty strings.
 */
function isSessionHeader(
  header: Record<string, unknown>,
): header is Record<string, unknown> & { alg: typeof SIGNING_ALGORITHM; typ: string } {
  return (
    header.alg === SIGNING_ALGORITHM &&
    header.typ === SESSION_TOKEN_TYPE &&
    header.crit === undefined
  );
}

interface RegisteredClaims {
  iss: string;
  aud: string | string[];
  exp: number;
  nbf: number | undefined;
}

const isNumber = (value: unknown): value is number => Number.isFinite(value);
const isNonEmpty = (value: unknown): value is string => typeof value === "string" && value !== "";

/** The registered claims every JWT verification checks, expiry first of all; null when invalid. */
function registeredClaims(payload: Record<string, unknown>): RegisteredClaims | null {
  const { iss, aud, sub, iat, exp, nbf, jti } = payload;
  if (typeof iss !== "string" || typeof sub !== "string" || typeof jti !== "string") return null;
  if (!isNumber(iat) || !isNumber(exp) || (nbf !== undefined && !isNumber(nbf))) return null;
  if (typeof aud === "string") return { iss, aud, exp, nbf };
  if (!Array.isArray(aud) || !aud.every((entry) => typeof entry === "string")) return null;
  return { iss, aud, exp, nbf };
}

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
      const header = jws.header;
      if (!isSessionHeader(header)) throw invalid("is not an EdDSA kw-session+jwt");
      const [protectedPart = "", payloadPart = ""] = jws.signingInput.split(".");
      let key: KeyObject;
      try {
        key = keyObjectOf(
          await options.getKey(header, {
            protected: protectedPart,
            payload: payloadPart,
            signature: jws.signature.toString("base64url"),
          }),
        );
      } catch (error) {
        throw toTokenError(error);
      }
      if (!signedBy(jws, key)) throw invalid("signature does not verify");
      const registered = registeredClaims(jws.payload);
      if (registered === null) throw invalid("claims are invalid");
      const { iss, aud, exp, nbf } = registered;
      if (iss !== options.issuer) throw invalid("is from another issuer");
      if (!(typeof aud === "string" ? [aud] : aud).includes(options.audience)) {
        throw invalid("is for another audience");
      }
      if (exp <= now - clockTolerance) {
        throw new TokenError("TOKEN_EXPIRED", "session token has expired");
      }
      if (nbf !== undefined && nbf > now + clockTolerance) throw invalid("is not valid yet");
      const { sub, org, pln, pv, jti } = jws.payload;
      if (!isNonEmpty(sub) || !isNonEmpty(org) || !isNonEmpty(pln) || !isNonEmpty(pv)) {
        throw invalid("claims are invalid");
      }
      if (!isNonEmpty(jti)) throw invalid("claims are invalid");
      return {
        sessionId: sub,
        organizationId: org,
        planDigest: pln,
        profileVersionId: pv,
        expiresAt: new Date(exp * 1000),
        tokenId: jti,
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

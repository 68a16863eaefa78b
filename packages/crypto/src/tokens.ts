import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Readable prefixes make a leaked token recognisable (secret scanners, logs) and say where it
 * belongs. Prefixes never contain the token's random part, which is base64url (`-`, `_` included).
 */
export const TOKEN_PREFIXES = {
  operator: "kw_op_",
  organization: "kw_org_",
} as const;

export type TokenKind = keyof typeof TOKEN_PREFIXES;

const TOKEN_KINDS: readonly TokenKind[] = ["operator", "organization"];

const TOKEN_RANDOM_BYTES = 32;
/** 32 bytes in unpadded base64url. */
const randomPart = /^[A-Za-z0-9_-]{43}$/;

/** A new opaque bearer token: prefix + 32 random bytes (base64url). Show it once, store its hash. */
export function generateToken(kind: TokenKind): string {
  return `${TOKEN_PREFIXES[kind]}${randomBytes(TOKEN_RANDOM_BYTES).toString("base64url")}`;
}

/** The kind of a well-formed token, or undefined for anything else (cheap pre-check before lookup). */
export function tokenKind(token: string): TokenKind | undefined {
  for (const kind of TOKEN_KINDS) {
    const prefix = TOKEN_PREFIXES[kind];
    if (token.startsWith(prefix) && randomPart.test(token.slice(prefix.length))) return kind;
  }
  return undefined;
}

/** SHA-256 hex of the token: what is stored and looked up. Tokens have 256 bits of entropy, so no salt. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * Compares two strings in time independent of where they differ and of their lengths (both sides
 * are hashed to 32 bytes first), for secrets and token hashes.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const digestA = createHash("sha256").update(a, "utf8").digest();
  const digestB = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(digestA, digestB);
}

/** True when `token` hashes to `storedHash` (hex, any case), compared in constant time. */
export function verifyTokenHash(token: string, storedHash: string): boolean {
  return constantTimeEqual(hashToken(token), storedHash.toLowerCase());
}

import { createHmac, timingSafeEqual } from "node:crypto";

/** HMAC-SHA256 of `data` under `secret`; strings are encoded as UTF-8. */
export function hmacSha256(secret: string | Uint8Array, data: string | Uint8Array): Buffer {
  return createHmac("sha256", secret).update(data).digest();
}

/**
 * Compares two strings without leaking, through timing, where they first differ. Strings whose
 * UTF-8 lengths differ are unequal; that answer does reveal the length, which is public for every
 * signature format compared here (a hex or base64 digest has a fixed length).
 */
export function timingSafeEqualString(a: string, b: string): boolean {
  const left = Buffer.from(a, "utf8");
  const right = Buffer.from(b, "utf8");
  if (left.length !== right.length) {
    // Keep the work comparable to the equal-length path so a mismatch is not conspicuously fast.
    timingSafeEqual(left, left);
    return false;
  }
  return timingSafeEqual(left, right);
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

export interface VerifyHmacSha256HexInput {
  secret: string | Uint8Array;
  payload: string | Uint8Array;
  /** The signature as received, e.g. `sha256=ab12…` (GitHub) or `v0=ab12…` (Slack). */
  signatureHex: string;
  /** A literal prefix the signature must start with; it is removed before comparing. */
  prefix?: string;
}

/**
 * Checks a hex HMAC-SHA256 signature (upper- or lower-case hex). Returns false — never throws —
 * for a missing prefix, malformed hex, a wrong signature, or an empty secret: an empty secret
 * would let anyone compute a valid signature, so it is treated as a misconfiguration that
 * accepts nothing.
 */
export function verifyHmacSha256Hex(input: VerifyHmacSha256HexInput): boolean {
  try {
    const { secret, payload, signatureHex, prefix = "" } = input;
    if (typeof signatureHex !== "string" || !signatureHex.startsWith(prefix)) return false;
    if (secret.length === 0) return false;
    const hex = signatureHex.slice(prefix.length);
    if (!SHA256_HEX.test(hex)) return false;
    // Compared as the 32 bytes both sides stand for (upper- or lower-case hex alike), not as
    // strings: no hex string of the digest and no UTF-8 copies of the two.
    return timingSafeEqual(Buffer.from(hex, "hex"), hmacSha256(secret, payload));
  } catch {
    // Callers pass request data straight through; a wrongly typed value must read as "not verified".
    return false;
  }
}

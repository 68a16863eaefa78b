import { randomBytes } from "node:crypto";
import { hmacSha256, timingSafeEqualString } from "./hmac";
import { isWithinTolerance } from "./timestamps";

/**
 * The Standard Webhooks scheme (https://www.standardwebhooks.com, symmetric variant): used to
 * verify inbound webhooks for the generic `http-api` definition and to sign Keyway's own
 * deliveries to webhook subscribers.
 *
 * - secret: `whsec_` + base64 of at least 24 random bytes;
 * - signed content: `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256, base64;
 * - `webhook-signature`: space-separated `version,signature` entries; only `v1` is HMAC-SHA256
 *   (`v1a` is the asymmetric ed25519 scheme, which this module does not verify);
 * - `webhook-timestamp`: integer seconds since the epoch.
 */

export const STANDARD_WEBHOOK_SECRET_PREFIX = "whsec_";
export const DEFAULT_STANDARD_WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

// The spec asks signing secrets to be at least 24 bytes (192 bits); shorter keys are refused so a
// weak key is reported as misconfiguration instead of silently trusted.
const MIN_SECRET_BYTES = 24;
const GENERATED_SECRET_BYTES = 32;
// Standard (not URL-safe) alphabet with padding, as the reference libraries encode secrets.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UNSIGNED_INTEGER = /^(?:0|[1-9][0-9]*)$/;

// A type alias, not an interface, so the result is assignable to header records (and `HeadersInit`).
export type StandardWebhookHeaders = {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
};

export interface SignStandardWebhookInput {
  /** `whsec_<base64>`. */
  secret: string;
  /** The message id; stays the same across retries. Must not contain "." (it delimits the content). */
  id: string;
  /** Seconds since the epoch of this attempt. */
  timestamp: number;
  /** The exact bytes that will be sent. */
  body: string | Uint8Array;
}

/** Signs a delivery. Throws a TypeError for an invalid secret, id or timestamp (caller bugs). */
export function signStandardWebhook(input: SignStandardWebhookInput): StandardWebhookHeaders {
  const key = decodeStandardWebhookSecret(input.secret);
  if (key === undefined) throw new TypeError("signStandardWebhook: invalid whsec_ secret");
  // The spec forbids "." in ids because it would make `id.timestamp.body` ambiguous.
  if (input.id.length === 0 || input.id.includes(".")) {
    throw new TypeError("signStandardWebhook: id must be non-empty and contain no '.'");
  }
  if (!Number.isSafeInteger(input.timestamp) || input.timestamp < 0) {
    throw new TypeError("signStandardWebhook: timestamp must be a non-negative integer (seconds)");
  }
  const timestamp = String(input.timestamp);
  return {
    "webhook-id": input.id,
    "webhook-timestamp": timestamp,
    "webhook-signature": `v1,${computeSignature(key, input.id, timestamp, input.body)}`,
  };
}

export interface VerifyStandardWebhookInput {
  /** `whsec_<base64>`; the bare base64 part is accepted too, as the reference libraries do. */
  secret: string;
  /** Lower-cased header names, e.g. the output of `normalizeHeaders`. */
  headers: Readonly<Record<string, string | undefined>>;
  /** The raw body exactly as received. */
  body: string | Uint8Array;
  now: Date;
  toleranceSeconds?: number;
}

export type StandardWebhookFailure =
  | "missing_header"
  | "invalid_timestamp"
  | "stale_timestamp"
  | "bad_signature"
  | "invalid_secret";

export type VerifyStandardWebhookResult =
  | { ok: true; id: string; timestamp: number }
  | { ok: false; reason: StandardWebhookFailure };

/**
 * Verifies a delivery: accepted when the timestamp is within tolerance (both directions) and any
 * `v1` entry of `webhook-signature` matches. Never throws.
 */
export function verifyStandardWebhook(
  input: VerifyStandardWebhookInput,
): VerifyStandardWebhookResult {
  const id = input.headers["webhook-id"];
  const timestampHeader = input.headers["webhook-timestamp"];
  const signatureHeader = input.headers["webhook-signature"];
  if (!id || !timestampHeader || !signatureHeader) return failure("missing_header");

  // Only canonical decimal digits: the signature covers the header text, and the reference
  // libraries re-serialize the parsed number, so a form like "0123" could never verify anyway.
  if (!UNSIGNED_INTEGER.test(timestampHeader)) return failure("invalid_timestamp");
  const timestamp = Number(timestampHeader);
  if (!Number.isSafeInteger(timestamp)) return failure("invalid_timestamp");

  const toleranceSeconds = input.toleranceSeconds ?? DEFAULT_STANDARD_WEBHOOK_TOLERANCE_SECONDS;
  if (!isWithinTolerance(timestamp * 1000, input.now, toleranceSeconds * 1000)) {
    return failure("stale_timestamp");
  }

  const key = decodeStandardWebhookSecret(input.secret, { allowBare: true });
  if (key === undefined) return failure("invalid_secret");

  let expected: string;
  try {
    expected = computeSignature(key, id, timestampHeader, input.body);
  } catch {
    // A body of the wrong runtime type cannot be what was signed.
    return failure("bad_signature");
  }
  // Every entry is compared (no early exit) so timing does not reveal which entry matched.
  let matched = false;
  for (const entry of signatureHeader.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma === -1 || entry.slice(0, comma) !== "v1") continue;
    if (timingSafeEqualString(entry.slice(comma + 1), expected)) matched = true;
  }
  return matched ? { ok: true, id, timestamp } : failure("bad_signature");
}

/** A new `whsec_` secret of 32 random bytes. */
export function generateStandardWebhookSecret(): string {
  return STANDARD_WEBHOOK_SECRET_PREFIX + randomBytes(GENERATED_SECRET_BYTES).toString("base64");
}

/**
 * The key bytes of a `whsec_` secret, or undefined when it is not canonical padded base64 of at
 * least 24 bytes. `allowBare` accepts the base64 part without the prefix.
 */
export function decodeStandardWebhookSecret(
  secret: string,
  options: { allowBare?: boolean } = {},
): Buffer | undefined {
  if (typeof secret !== "string") return undefined;
  let encoded: string;
  if (secret.startsWith(STANDARD_WEBHOOK_SECRET_PREFIX)) {
    encoded = secret.slice(STANDARD_WEBHOOK_SECRET_PREFIX.length);
  } else if (options.allowBare === true) {
    encoded = secret;
  } else {
    return undefined;
  }
  if (encoded.length === 0 || !BASE64.test(encoded)) return undefined;
  const key = Buffer.from(encoded, "base64");
  return key.length >= MIN_SECRET_BYTES ? key : undefined;
}

function computeSignature(
  key: Uint8Array,
  id: string,
  timestamp: string,
  body: string | Uint8Array,
): string {
  const head = Buffer.from(`${id}.${timestamp}.`, "utf8");
  const content = Buffer.concat([
    head,
    typeof body === "string" ? Buffer.from(body, "utf8") : body,
  ]);
  return hmacSha256(key, content).toString("base64");
}

function failure(reason: StandardWebhookFailure): { ok: false; reason: StandardWebhookFailure } {
  return { ok: false, reason };
}

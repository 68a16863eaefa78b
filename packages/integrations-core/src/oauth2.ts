import { createHash, randomBytes } from "node:crypto";

/** PKCE (RFC 7636) verifier and its S256 challenge. */
export interface PkcePair {
  verifier: string;
  challenge: string;
  method: "S256";
}

export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier, "ascii").digest("base64url");
}

/** A fresh 43-character base64url verifier (32 random bytes) and its S256 challenge. */
export function createPkcePair(): PkcePair {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: pkceChallenge(verifier), method: "S256" };
}

/** Random, URL-safe OAuth `state` value (only its hash is stored). */
export function createOAuthState(): string {
  return randomBytes(32).toString("base64url");
}

/** What is stored of a `state` (SHA-256, hex): a leaked row cannot complete a flow. */
export function hashOAuthState(state: string): string {
  return createHash("sha256").update(state, "utf8").digest("hex");
}

export type OAuth2FailureKind = "temporary" | "permanent";

/**
 * A failed token request. `permanent` means retrying with the same grant cannot succeed (the
 * connection must be re-authorised and is marked `error`); `temporary` means try again later.
 * The message never includes token values.
 */
export class OAuth2Error extends Error {
  override readonly name = "OAuth2Error";
  constructor(
    readonly kind: OAuth2FailureKind,
    /** OAuth `error` code (`invalid_grant`, ...) or `http_<status>` / `network_error`. */
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Error codes after which the same grant will never work (RFC 6749 §5.2, plus Slack's). */
const PERMANENT_CODES = new Set([
  "invalid_grant",
  "invalid_client",
  "unauthorized_client",
  "unsupported_grant_type",
  "invalid_scope",
  "access_denied",
  "invalid_request",
  "invalid_refresh_token",
  "invalid_code",
  "token_revoked",
  "token_expired",
  "bad_client_secret",
  "invalid_client_id",
]);

/**
 * Codes that say "try again later" even when they arrive with a 4xx or, as Slack sends every
 * error, with HTTP 200 `{ ok: false }`.
 */
const TEMPORARY_CODES = new Set([
  "temporarily_unavailable",
  "server_error",
  "ratelimited",
  "rate_limited",
  "internal_error",
  "fatal_error",
  "service_unavailable",
  "request_timeout",
]);

/**
 * Classifies a token endpoint failure: server errors, rate limiting and codes that mean "later"
 * are temporary; known OAuth error codes and other 4xx answers are permanent.
 */
export function classifyOAuth2Failure(
  status: number,
  errorCode: string | undefined,
): OAuth2FailureKind {
  if (status >= 500 || status === 429 || status === 408) return "temporary";
  if (errorCode && TEMPORARY_CODES.has(errorCode)) return "temporary";
  if (errorCode && PERMANENT_CODES.has(errorCode)) return "permanent";
  return status >= 400 ? "permanent" : "temporary";
}

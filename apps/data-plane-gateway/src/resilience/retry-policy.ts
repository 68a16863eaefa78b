/**
 * When a failed upstream attempt may be sent again (SPEC §7 "Resilience"): only idempotent
 * methods, only requests without a body (a streamed body has been consumed by the first attempt
 * and is never buffered), only on connection-level errors before any response byte arrived, and
 * at most `maxRetries` times. Timeouts are not retried: the upstream may still be working on the
 * request, and a second wait would double the sandbox's.
 */

const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "PUT",
  "DELETE",
]);

/**
 * Refused or reset connections, and undici's "other side closed" (a kept-alive connection the
 * upstream closed just as the request went out: the classic reason to retry).
 */
const CONNECTION_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "UND_ERR_SOCKET",
]);

/** How many times a request may be re-sent after a connection error. */
export function retriesAllowed(method: string, hasBody: boolean, maxRetries: number): number {
  return !hasBody && IDEMPOTENT_METHODS.has(method) ? maxRetries : 0;
}

/** Whether an upstream error happened at the connection level, before any answer. */
export function isRetryableConnectionError(error: Error): boolean {
  const code = "code" in error ? error.code : undefined;
  return typeof code === "string" && CONNECTION_ERRORS.has(code);
}

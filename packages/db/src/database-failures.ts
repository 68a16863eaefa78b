import { DeadlineExceededError } from "./client";

/**
 * Telling "the database cannot serve right now" apart from a bug, and describing a failure
 * without the query or its parameters. drizzle wraps every failed query in an error whose
 * message holds the SQL text and the bound values (token hashes, ids, …); the cause it wraps
 * (postgres.js's error, or Node's socket error) says what actually went wrong.
 */

/** What a log line may say about a database failure: never the query or its parameters. */
export interface DatabaseFailureCause {
  name: string;
  /** SQLSTATE (`57014`), postgres.js code (`CONNECTION_CLOSED`) or Node errno code (`ECONNREFUSED`). */
  code?: string;
  message: string;
}

/** SQLSTATEs that mean the server is unreachable, restarting or out of time (and class 08). */
const UNAVAILABLE_SQLSTATES = new Set([
  "57014", // query_canceled: statement_timeout
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up or recovering
  "57P05", // idle_session_timeout
  "25P03", // idle_in_transaction_session_timeout
  "25P04", // transaction_timeout
  "55P03", // lock_not_available: lock_timeout
  "53300", // too_many_connections
]);
/** postgres.js's own codes and Node's socket errors. */
const UNAVAILABLE_CLIENT_CODES = new Set([
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

/** The innermost error of a `cause` chain (drizzle's wrapper → postgres.js → …). */
function rootCause(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 8; depth++) {
    if (typeof current !== "object" || current === null || !("cause" in current)) break;
    if (current.cause === undefined || current.cause === null) break;
    current = current.cause;
  }
  return current;
}

function codeOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}

/** Whether `error` (or what it wraps) says the database cannot serve now, rather than a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DeadlineExceededError) return true;
  const root = rootCause(error);
  if (root instanceof DeadlineExceededError) return true;
  const code = codeOf(root);
  if (code === undefined) return false;
  return (
    UNAVAILABLE_CLIENT_CODES.has(code) ||
    // A server reached through a Unix-domain socket removes the socket file when it stops.
    (code === "ENOENT" && (root as { syscall?: unknown }).syscall === "connect") ||
    UNAVAILABLE_SQLSTATES.has(code) ||
    // Class 08, connection_exception.
    (code.length === 5 && code.startsWith("08"))
  );
}

/**
 * The innermost cause of a failure, for logs: its name, code and message. A wrapper that quotes
 * the query (drizzle's "Failed query: … params: …") is skipped, and so is postgres.js's
 * `query`/`parameters` (kept off the message anyway).
 */
export function databaseFailureCause(error: unknown): DatabaseFailureCause {
  const root = rootCause(error);
  if (!(root instanceof Error)) return { name: typeof root, message: String(root) };
  const code = codeOf(root);
  // A query wrapper that lost its cause still must not reach a log with its parameters.
  const message = root.message.startsWith("Failed query:") ? "query failed" : root.message;
  return { name: root.name, ...(code !== undefined ? { code } : {}), message };
}

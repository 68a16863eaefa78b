import { databaseFailureCause, isDatabaseUnavailable } from "@keyway/db";
import type { CompileErrorCode } from "@keyway/integrations-core";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import { errorLogFields, type Logger } from "./logger";

/**
 * Domain errors and the one place they become HTTP responses (CONVENTIONS: one error-to-HTTP
 * mapping). Services throw `DomainError`s with a stable `code`; routes never build error bodies.
 * Messages are written for the caller and never contain secrets.
 */
export type ErrorKind =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "unprocessable"
  | "rate_limited"
  | "bad_gateway"
  | "unavailable";

const STATUS: Record<ErrorKind, 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 502 | 503> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  unprocessable: 422,
  rate_limited: 429,
  bad_gateway: 502,
  unavailable: 503,
};

/**
 * Every `error.code` the API answers with, besides the compile error codes of
 * `@keyway/integrations-core` (`COMPILE_ERROR_CATEGORIES`) that profile and session routes pass
 * through. One convention for every code, the API's and the gateway's: lower snake_case (SPEC §7
 * fixes `policy_denied`, `proxy_auth_required`). `docs/errors.md` lists each with its status and
 * meaning; `error-codes.test.ts` keeps the list, the convention and the document in step.
 */
export const API_ERROR_CODES = [
  // Any route
  "invalid_request",
  "unauthorized",
  "forbidden",
  "not_found",
  "payload_too_large",
  "unsupported_media_type",
  "internal_error",
  "service_unavailable",
  // Targets
  "target_key_taken",
  "unknown_variant",
  "target_config_invalid",
  "target_secrets_invalid",
  // Connections
  "target_not_found",
  "target_disabled",
  "method_not_found",
  "method_not_supported_here",
  "connection_revoked",
  "invalid_connection_config",
  "credential_not_available",
  "resources_not_supported",
  "provider_request_failed",
  "client_credentials_rejected",
  // OAuth2 authorization code flow (`connections/oauth2-flow.ts`)
  "redirect_not_allowed",
  "oauth2_client_not_configured",
  "oauth2_state_invalid",
  "oauth2_authorization_denied",
  "oauth2_code_rejected",
  "oauth2_subject_mismatch",
  // GitHub App installation flow (`connections/github-app-flow.ts`)
  "github_app_not_configured",
  "install_state_invalid",
  "install_state_used",
  "install_state_expired",
  "installation_pending",
  "installation_authorization_missing",
  "installation_not_accessible",
  // Profiles and sessions
  "profile_name_taken",
  "profile_in_use",
  "profile_not_found",
  "profile_version_not_found",
  "profile_has_no_versions",
  "session_revoked",
  "session_expired",
  // Internal API: credential resolution refusals (`internal/refusals.ts`)
  "session_not_live",
  "route_not_in_plan",
  "route_has_no_credential",
  "connection_not_active",
  "credential_unavailable",
  // Webhook front door (`webhooks/ingest.ts`)
  "invalid_signature",
  "stale_timestamp",
  "invalid_webhook",
  // Webhook subscriptions and deliveries (`webhooks/subscriptions.ts`, `webhooks/events.ts`)
  "subscriber_url_private",
  "subscriber_url_unresolvable",
  "subscription_disabled",
  "delivery_in_progress",
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number] | CompileErrorCode;

export interface FieldIssue {
  field: string;
  code: string;
  message: string;
}

export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly kind: ErrorKind,
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  get status() {
    return STATUS[this.kind];
  }
}

export const notFound = (what: string) =>
  new DomainError("not_found", "not_found", `${what} not found`);
export const forbidden = (message = "your role does not allow this") =>
  new DomainError("forbidden", "forbidden", message);
export const conflict = (code: ApiErrorCode, message: string, details?: unknown) =>
  new DomainError("conflict", code, message, details);
export const unprocessable = (code: ApiErrorCode, message: string, details?: unknown) =>
  new DomainError("unprocessable", code, message, details);
export const badRequest = (code: ApiErrorCode, message: string, issues?: FieldIssue[]) =>
  new DomainError("bad_request", code, message, issues ? { issues } : undefined);
/**
 * The database cannot serve right now (unreachable, restarting, frozen, or the request's
 * deadline passed): a retryable 503, never a 500.
 */
export const serviceUnavailable = () =>
  new DomainError(
    "unavailable",
    "service_unavailable",
    "the service is temporarily unavailable; try again shortly",
  );

/** `Retry-After` of every 503: long enough for a database restart to be noticed. */
const RETRY_AFTER_SECONDS = "2";

/** Zod issues as field issues; `prefix` places them (`path.`, `query.`; body fields have none). */
export function zodFieldIssues(error: ZodError, prefix = ""): FieldIssue[] {
  return error.issues.map((issue) => ({
    field: prefix + issue.path.map(String).join("."),
    code: fieldIssueCode(issue),
    message: issue.message,
  }));
}

/**
 * The code a field issue shows: zod's, or for a custom check the code it names in `params.code`
 * (the text rules' `invalid_characters`), which says more than `custom`.
 */
export function fieldIssueCode(issue: ZodError["issues"][number]): string {
  if (issue.code === "custom" && typeof issue.params?.code === "string") return issue.params.code;
  return issue.code;
}

export interface ErrorBody {
  error: { code: ApiErrorCode; message: string; details?: unknown; requestId: string };
}

/** The status and SPEC §6.2 error body of anything a handler throws; 5xx only for our own faults. */
export function errorOf(
  error: unknown,
  requestId: string,
): { status: ErrorStatus; body: ErrorBody } {
  if (error instanceof DomainError) {
    const body: ErrorBody = { error: { code: error.code, message: error.message, requestId } };
    if (error.details !== undefined) body.error.details = error.details;
    return { status: error.status, body };
  }
  if (isDatabaseUnavailable(error)) return errorOf(serviceUnavailable(), requestId);
  if (error instanceof HTTPException) {
    // Hono raises these for malformed JSON, body limits and the like: all caller mistakes.
    const status = error.status;
    const code =
      status === 413 ? "payload_too_large" : status === 401 ? "unauthorized" : "invalid_request";
    return {
      status,
      body: { error: { code, message: error.message || "invalid request", requestId } },
    };
  }
  return {
    status: 500,
    body: { error: { code: "internal_error", message: "internal error", requestId } },
  };
}

type ErrorStatus = (typeof STATUS)[ErrorKind] | HTTPException["status"] | 500;

/** The headers an error answer carries besides its JSON content type: `Retry-After` on a 503. */
export function errorHeaders(status: number): Record<string, string> | undefined {
  return status === 503 ? { "retry-after": RETRY_AFTER_SECONDS } : undefined;
}

/**
 * The one error-to-HTTP mapping (`errorOf`) as a response. The batch resolution route answers
 * each item's failure with `errorOf` too, and the webhook front door (`webhooks/ingest-front-door.ts`)
 * writes `errorOf` and `errorHeaders` to Node's response itself.
 */
export function errorResponse(error: unknown, c: Context): Response {
  const { status, body } = errorOf(error, String(c.get("requestId") ?? ""));
  const headers = errorHeaders(status);
  if (headers !== undefined)
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
  return c.json(body, status);
}

/**
 * What a request's failure leaves in the log: nothing for a `DomainError` (the caller's answer
 * says it all). Never the failed query: drizzle's wrapper quotes the SQL and its parameters. An
 * unreachable database is logged by its cause (ECONNREFUSED, 57P01, a timeout), which holds no
 * values; anything else by SQLSTATE and constraint only.
 */
export function logRequestFailure(logger: Logger, error: unknown, requestId: string): void {
  if (error instanceof DomainError) return;
  if (isDatabaseUnavailable(error)) {
    const { name, code, message } = databaseFailureCause(error);
    logger.warn("database unavailable", { requestId, error: name, code, message });
  } else {
    logger.error("unhandled error", { requestId, ...errorLogFields(error) });
  }
}

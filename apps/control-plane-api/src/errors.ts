import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";

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

export interface FieldIssue {
  field: string;
  code: string;
  message: string;
}

export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
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
export const conflict = (code: string, message: string, details?: unknown) =>
  new DomainError("conflict", code, message, details);
export const unprocessable = (code: string, message: string, details?: unknown) =>
  new DomainError("unprocessable", code, message, details);
export const badRequest = (code: string, message: string, issues?: FieldIssue[]) =>
  new DomainError("bad_request", code, message, issues ? { issues } : undefined);

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
  error: { code: string; message: string; details?: unknown; requestId: string };
}

/** Maps anything thrown by a handler to the SPEC §6.2 error body; 5xx only for our own faults. */
export function errorResponse(error: unknown, c: Context): Response {
  const requestId = String(c.get("requestId") ?? "");
  if (error instanceof DomainError) {
    const body: ErrorBody = { error: { code: error.code, message: error.message, requestId } };
    if (error.details !== undefined) body.error.details = error.details;
    return c.json(body, error.status);
  }
  if (error instanceof HTTPException) {
    // Hono raises these for malformed JSON, body limits and the like: all caller mistakes.
    const status = error.status;
    const code =
      status === 413 ? "payload_too_large" : status === 401 ? "unauthorized" : "invalid_request";
    return c.json(
      {
        error: { code, message: error.message || "invalid request", requestId },
      } satisfies ErrorBody,
      status,
    );
  }
  return c.json(
    { error: { code: "internal_error", message: "internal error", requestId } } satisfies ErrorBody,
    500,
  );
}

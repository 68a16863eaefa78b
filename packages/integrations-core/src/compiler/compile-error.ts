/**
 * Stable compile error codes. Each belongs to one category so callers can tell a malformed input
 * (`shape`), a reference that is not usable (`reference`) and two valid bindings that cannot live
 * in one profile (`conflict`) apart without parsing messages.
 */
export const COMPILE_ERROR_CATEGORIES = {
  UNKNOWN_DEFINITION: "reference",
  TARGET_NOT_FOUND: "reference",
  CONNECTION_NOT_FOUND: "reference",
  TARGET_MISMATCH: "reference",
  TARGET_DISABLED: "reference",
  CONNECTION_NOT_ACTIVE: "reference",
  KIND_MISMATCH: "reference",
  UNKNOWN_CONNECTION_METHOD: "reference",
  DUPLICATE_BINDING: "shape",
  INVALID_TARGET_CONFIG: "shape",
  INVALID_CONNECTION_CONFIG: "shape",
  INVALID_BINDING_CONFIG: "shape",
  BINDING_VALIDATION_FAILED: "shape",
  INVALID_COMPILE_OUTPUT: "shape",
  ROUTE_CONFLICT: "conflict",
  MCP_CONFLICT: "conflict",
  ARTIFACT_CONFLICT: "conflict",
  RUNTIME_CLIENT_CONFLICT: "conflict",
  ENV_CONFLICT: "conflict",
} as const;

export type CompileErrorCode = keyof typeof COMPILE_ERROR_CATEGORIES;
export type CompileErrorCategory = (typeof COMPILE_ERROR_CATEGORIES)[CompileErrorCode];

export interface CompileIssue {
  /** Dotted path inside the config the issue is about ("" for the whole object). */
  field: string;
  code: string;
  message: string;
}

export interface CompileErrorDetail {
  code: CompileErrorCode;
  category: CompileErrorCategory;
  /** The binding the error is about; for conflicts, the first of `bindingIds`. */
  bindingId: string;
  /** Every binding involved (two for conflicts). */
  bindingIds: string[];
  /** Safe to show users: names ids, hosts and fields, never config values or secrets. */
  message: string;
  issues?: CompileIssue[];
}

export function compileError(
  code: CompileErrorCode,
  bindingIds: readonly string[],
  message: string,
  issues?: CompileIssue[],
): CompileErrorDetail {
  const ids = [...bindingIds];
  const detail: CompileErrorDetail = {
    code,
    category: COMPILE_ERROR_CATEGORIES[code],
    bindingId: ids[0] ?? "",
    bindingIds: ids,
    message,
  };
  if (issues && issues.length > 0) detail.issues = issues;
  return detail;
}

/** Thrown by `compilePlanOrThrow`; carries every error found, in a stable order. */
export class PlanCompileError extends Error {
  override readonly name = "PlanCompileError";
  readonly code: CompileErrorCode;
  constructor(readonly errors: readonly CompileErrorDetail[]) {
    const first = errors[0];
    super(
      first
        ? `${first.code}: ${first.message}${errors.length > 1 ? ` (+${errors.length - 1} more)` : ""}`
        : "plan compile failed",
    );
    this.code = first?.code ?? "INVALID_COMPILE_OUTPUT";
  }
}

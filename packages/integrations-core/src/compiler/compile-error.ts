/**
 * Stable compile error codes. Each belongs to one category so callers can tell a malformed input
 * (`shape`), a reference that is not usable (`reference`) and two valid bindings that cannot live
 * in one profile (`conflict`) apart without parsing messages.
 */
export const COMPILE_ERROR_CATEGORIES = {
  unknown_definition: "reference",
  target_not_found: "reference",
  connection_not_found: "reference",
  target_mismatch: "reference",
  target_disabled: "reference",
  connection_not_active: "reference",
  kind_mismatch: "reference",
  unknown_connection_method: "reference",
  duplicate_binding: "shape",
  invalid_target_config: "shape",
  invalid_connection_config: "shape",
  invalid_binding_config: "shape",
  binding_validation_failed: "shape",
  invalid_compile_output: "shape",
  route_conflict: "conflict",
  mcp_conflict: "conflict",
  artifact_conflict: "conflict",
  runtime_client_conflict: "conflict",
  env_conflict: "conflict",
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
    this.code = first?.code ?? "invalid_compile_output";
  }
}

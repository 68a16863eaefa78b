import type { AnyIntegrationDefinition } from "@keyway/integrations-core";
import type { z } from "zod";
import { type FieldIssue, fieldIssueCode } from "../errors";

/**
 * Parsing a target's operator-owned config and secrets with its definition's schemas. Stored
 * config is the operator's input as written (`{}` for a registry default), parsed at use time:
 * defaults then follow the definition (e.g. a new model table) instead of freezing at sync time.
 */

export type ZodIssue = z.core.$ZodIssue;

export type ParseOutcome = { ok: true; value: unknown } | { ok: false; issues: ZodIssue[] };

export function parseTargetConfig(
  definition: AnyIntegrationDefinition,
  raw: unknown,
): ParseOutcome {
  const parsed = safeParse(definition.targetConfigSchema, raw);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, issues: parsed.error.issues };
}

/**
 * A schema that throws (a definition bug, e.g. a refinement calling `new URL` on a value whose
 * format check already failed) must still answer bad input with an issue, never a 500.
 */
function safeParse(schema: z.ZodType, raw: unknown) {
  try {
    return schema.safeParse(raw);
  } catch {
    const issue: ZodIssue = {
      code: "custom",
      path: [],
      message: "the value could not be validated; check every field's format",
      input: undefined,
    };
    return { success: false as const, error: { issues: [issue] } };
  }
}

/**
 * Secret values never appear in an issue message: a definition's own refinement message could
 * quote the input, so any message containing one of the values is replaced.
 */
export function parseTargetSecrets(
  definition: AnyIntegrationDefinition,
  raw: Readonly<Record<string, string>>,
): ParseOutcome {
  const parsed = safeParse(definition.targetSecretSchema, raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  const values = Object.values(raw).filter((value) => value.length > 0);
  return {
    ok: false,
    issues: parsed.error.issues.map((issue) =>
      values.some((value) => issue.message.includes(value))
        ? { ...issue, message: "invalid value (hidden: it is secret)" }
        : issue,
    ),
  };
}

/** Issues as API field issues, with paths relative to the request body (`config.baseUrl`). */
export function fieldIssuesAt(prefix: string, issues: readonly ZodIssue[]): FieldIssue[] {
  return issues.flatMap((issue): FieldIssue[] => {
    const base = [prefix, ...issue.path.map(String)].filter((s) => s !== "").join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        field: base === "" ? key : `${base}.${key}`,
        code: issue.code,
        message: "unknown field",
      }));
    }
    return [{ field: base, code: fieldIssueCode(issue), message: issue.message }];
  });
}

/** Secret field names in a stable order (what the API shows instead of values). */
export function secretFieldNames(secrets: Readonly<Record<string, string>>): string[] {
  return Object.keys(secrets).sort();
}

import { TEXT_ISSUE_CODE, type TextKind, textViolation } from "@keyway/integrations-core";
import type { FieldIssue } from "./errors";

/**
 * The text check every API request passes at the boundary (SPEC §10), before any schema or
 * service sees it: every string of a JSON body, and every object key, path parameter and query
 * parameter, must follow the text rules of `@keyway/integrations-core` (`text.ts`).
 *
 * - Body values follow the `multi-line` rule (no NUL, lone surrogate or control character other
 *   than TAB, LF and CR): the lowest rule any text may follow. Fields with a stricter kind (names,
 *   URLs, secrets sent in HTTP) refuse more through their own schemas.
 * - Object keys, path parameters and query parameters follow the `single-line` rule.
 *
 * Field names: body fields by their dotted path (`config.baseUrl`, `bindings.0.connectionId`),
 * path parameters as `path.<name>`, query parameters as `query.<name>`. A key that breaks the
 * rule is named with the offending characters escaped (`config.a\u0000b`), so an issue never
 * carries the characters it refuses.
 */

export type InputLocation = "json" | "param" | "query";

const LOCATION_PREFIX: Record<InputLocation, string> = {
  json: "",
  param: "path.",
  query: "query.",
};

export function fieldPrefix(location: InputLocation): string {
  return LOCATION_PREFIX[location];
}

export function inputTextIssues(location: InputLocation, value: unknown): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const prefix = LOCATION_PREFIX[location];
  if (location === "json") {
    walk(value, [], issues, "multi-line");
  } else if (value !== null && typeof value === "object") {
    // `{ name: value }` or `{ name: [values] }` (repeated query parameters): all one line.
    for (const [name, raw] of Object.entries(value)) {
      const field = `${prefix}${printable(name)}`;
      checkString(name, field, "single-line", issues, "parameter name");
      for (const item of Array.isArray(raw) ? raw : [raw]) {
        if (typeof item === "string") checkString(item, field, "single-line", issues);
      }
    }
  }
  return issues;
}

/**
 * `path` is the raw keys down to `value`, one array shared by the whole walk: the printable field
 * name is built only for a string that breaks its rule. Every internal request's body passes here
 * (a gateway's batch of hundreds of resolutions), and joining a path for every string was ≈ 20 µs
 * of the API's CPU per batch item (`pnpm bench:storm --profile`).
 */
function walk(value: unknown, path: string[], issues: FieldIssue[], kind: TextKind): void {
  if (typeof value === "string") {
    const violation = textViolation(value, kind);
    if (violation !== undefined) pushIssue(issues, fieldPath(path), violation);
  } else if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      path.push(String(index));
      walk(value[index], path, issues, kind);
      path.pop();
    }
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      path.push(key);
      const violation = textViolation(key, "single-line");
      if (violation !== undefined) pushIssue(issues, fieldPath(path), violation, "field name");
      walk(item, path, issues, kind);
      path.pop();
    }
  }
}

function fieldPath(path: readonly string[]): string {
  return path.map(printable).join(".");
}

function checkString(
  value: string,
  field: string,
  kind: TextKind,
  issues: FieldIssue[],
  what?: string,
): void {
  const violation = textViolation(value, kind);
  if (violation !== undefined) pushIssue(issues, field, violation, what);
}

function pushIssue(issues: FieldIssue[], field: string, violation: string, what?: string): void {
  issues.push({
    field,
    code: TEXT_ISSUE_CODE,
    message: what === undefined ? violation : `${what} ${violation}`,
  });
}

/** A key or name as it can appear in a field path: characters the rule refuses are escaped. */
function printable(name: string): string {
  if (textViolation(name, "single-line") === undefined) return name;
  // Iterating a string yields code points, and a lone surrogate on its own.
  return [...name]
    .map((char) =>
      textViolation(char, "single-line") === undefined
        ? char
        : `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
    )
    .join("");
}

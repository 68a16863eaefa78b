import type { z } from "zod";

export type ConfigErrorCode =
  /** A key has the wrong type or value, or is unknown. */
  | "CONFIG_INVALID"
  /** The file cannot be read or is not TOML. */
  | "CONFIG_UNREADABLE"
  /** `writeDevelopmentConfig` found a file it must not overwrite. */
  | "CONFIG_EXISTS"
  /** A setting this process needs is absent (`requireSetting`). */
  | "CONFIG_MISSING_SETTING";

export interface ConfigProblem {
  /** Dotted key path, e.g. `api.port`; empty for the document itself. */
  key: string;
  /** The environment variable the value came from, when it did. */
  envVar?: string;
  message: string;
}

/**
 * One line per problem: `config error: api.port: expected number, got "abc"` or, for a value from
 * the environment, `config error: api.port (from KEYWAY_API__PORT): …`. Secret values are never
 * repeated.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly code: ConfigErrorCode,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(problems.map(formatProblem).join("\n"));
  }
}

function formatProblem(problem: ConfigProblem): string {
  const source = problem.envVar ? `(from ${problem.envVar})` : "";
  const where = [problem.key, source].filter((part) => part !== "").join(" ");
  return `config error: ${where === "" ? "" : `${where}: `}${problem.message}`;
}

/** Returns `value`, or throws naming the key when a process needs a setting that is absent. */
export function requireSetting<T>(value: T | undefined, key: string): T {
  if (value === undefined) {
    throw new ConfigError("CONFIG_MISSING_SETTING", [{ key, message: "required but not set" }]);
  }
  return value;
}

/** Source of a value, for messages: which variable set the key (or a table above it). */
export type EnvSourceLookup = (path: readonly PropertyKey[]) => string | undefined;

/** Turns zod issues into problems, reading offending values from the validated document. */
export function problemsFromIssues(
  issues: readonly z.core.$ZodIssue[],
  document: unknown,
  envSource: EnvSourceLookup,
): ConfigProblem[] {
  return issues.flatMap((issue): ConfigProblem[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => problem([...issue.path, key], "unknown key", envSource));
    }
    const value = valueAt(document, issue.path);
    return [problem(issue.path, describeIssue(issue, value, issue.path), envSource)];
  });
}

function problem(path: readonly PropertyKey[], message: string, envSource: EnvSourceLookup) {
  const envVar = envSource(path);
  return { key: path.map(String).join("."), ...(envVar ? { envVar } : {}), message };
}

function describeIssue(
  issue: z.core.$ZodIssue,
  value: unknown,
  path: readonly PropertyKey[],
): string {
  const got = `got ${describeValue(value, path)}`;
  switch (issue.code) {
    case "invalid_type":
      if (issue.expected === "never") return issue.message;
      if (value === undefined) return `missing, expected ${typeName(issue.expected)}`;
      return `expected ${typeName(issue.expected)}, ${got}`;
    case "invalid_value":
      return `expected ${issue.values.map((option) => JSON.stringify(option)).join(" or ")}, ${got}`;
    case "too_small":
      return `${minimumText(issue)}, ${got}`;
    case "too_big":
      return `${maximumText(issue)}, ${got}`;
    case "custom":
      return issue.message;
    case "invalid_key":
      return `invalid key: ${issue.issues[0]?.message ?? issue.message}`;
    default:
      return isScalar(value) ? `${issue.message}, ${got}` : issue.message;
  }
}

function minimumText(issue: z.core.$ZodIssueTooSmall): string {
  const bound = Number(issue.minimum);
  if (issue.origin === "string" && bound === 1) return "must not be empty";
  if (issue.origin === "array")
    return `expected at least ${bound} ${bound === 1 ? "entry" : "entries"}`;
  if (issue.origin === "string") return `expected at least ${bound} characters`;
  if (issue.message && !issue.message.startsWith("Too small")) return issue.message;
  return `must be ${issue.inclusive === false ? "greater than" : "at least"} ${bound}`;
}

function maximumText(issue: z.core.$ZodIssueTooBig): string {
  const bound = Number(issue.maximum);
  if (issue.origin === "array") return `expected at most ${bound} entries`;
  if (issue.origin === "string") return `expected at most ${bound} characters`;
  return `must be ${issue.inclusive === false ? "less than" : "at most"} ${bound}`;
}

function typeName(expected: string): string {
  switch (expected) {
    case "object":
    case "record":
      return "table";
    case "int":
      return "integer";
    default:
      return expected;
  }
}

/** Paths whose values are secret, by pattern (`*` one segment) or by the name of their last key. */
const secretPaths = [
  "database.url",
  "keys.master.keys.*.key",
  "keys.session_signing.keys.*.private_key",
  "gateway.identity.private_key",
  "internal.gateways.*.public_jwk.d",
  "targets.*.secrets",
].map((pattern) => pattern.split("."));
const secretKeyName = /secret|passw(or)?d|credential|private_?key|api_?key|token$|^key$|^d$/i;

function isSecretPath(path: readonly PropertyKey[]): boolean {
  const segments = path.map(String);
  const last = segments[segments.length - 1];
  if (last !== undefined && secretKeyName.test(last)) return true;
  // A pattern matches the path or any table above it (all of `targets.*.secrets` is secret).
  return secretPaths.some(
    (pattern) =>
      pattern.length <= segments.length &&
      pattern.every((part, index) => part === "*" || part === segments[index]),
  );
}

function describeValue(value: unknown, path: readonly PropertyKey[]): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  if (typeof value === "object" && value !== null) return "a table";
  if (isSecretPath(path)) return `a ${typeof value} (value hidden)`;
  if (typeof value === "string") {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  }
  return String(value);
}

function isScalar(value: unknown): boolean {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function valueAt(document: unknown, path: readonly PropertyKey[]): unknown {
  let current = document;
  for (const segment of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = Reflect.get(current, segment);
  }
  return current;
}

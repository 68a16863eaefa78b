import { z } from "zod";

/**
 * `KEYWAY_*` environment overrides.
 *
 * - Only variables whose name holds a double underscore are overrides: `KEYWAY_` + the key path,
 *   segments joined by `__` and lower-cased: `KEYWAY_DATABASE__URL` → `database.url`,
 *   `KEYWAY_GATEWAY__EGRESS__DEFAULT_POLICY` → `gateway.egress.default_policy`. Other names
 *   (`KEYWAY_CONFIG`, variables of other tools) are not config keys. Empty values are ignored.
 * - Keys chosen by operators or definitions: under `targets`, a segment is a target key with `_`
 *   read as `-` (`KEYWAY_TARGETS__GITHUB_CLOUD__ENABLED` → `targets.github-cloud.enabled`); under a
 *   target's `config` and `secrets`, SNAKE_CASE is read as camelCase, the definitions' style
 *   (`…__SECRETS__WEBHOOK_SECRET` → `secrets.webhookSecret`).
 * - The value is coerced by the schema type at that key: numbers, booleans (`true`/`false`/`1`/`0`),
 *   strings as is; tables and arrays as JSON (a table is merged into the file's table, an array
 *   replaces it); free-form values (`targets.*.config.*`) as JSON when they parse, else as text.
 *   A value that cannot be coerced is kept as text so validation names the key and the variable.
 * - Overrides apply after the file, shorter paths first, so `KEYWAY_TARGETS__X='{…}'` and a more
 *   specific `KEYWAY_TARGETS__X__ENABLED` combine.
 */

export interface EnvOverride {
  envVar: string;
  path: string[];
  value: unknown;
}

export type EnvOverrideResult =
  | { ok: true; overrides: EnvOverride[] }
  | { ok: false; problems: { envVar: string; message: string }[] };

const PREFIX = "KEYWAY_";

export function readEnvOverrides(
  env: Readonly<Record<string, string | undefined>>,
  schema: ZodSchema,
): EnvOverrideResult {
  const overrides: EnvOverride[] = [];
  const problems: { envVar: string; message: string }[] = [];
  for (const [envVar, raw] of Object.entries(env)) {
    if (!envVar.startsWith(PREFIX) || !envVar.includes("__") || raw === undefined || raw === "") {
      continue;
    }
    const segments = envVar.slice(PREFIX.length).split("__");
    if (segments.some((segment) => segment === "")) {
      problems.push({ envVar, message: "malformed name (empty key segment)" });
      continue;
    }
    const path: string[] = [];
    for (const segment of segments) path.push(keyForSegment(path, segment));
    const value = coerce(raw, leafKind(schemaAt(schema, path)));
    if (value === unsafeJson) {
      problems.push({ envVar, message: "JSON value holds a __proto__ or constructor key" });
      continue;
    }
    overrides.push({ envVar, path, value });
  }
  if (problems.length > 0) return { ok: false, problems };
  overrides.sort((a, b) => a.path.length - b.path.length || a.envVar.localeCompare(b.envVar));
  return { ok: true, overrides };
}

/** Applies overrides to a parsed TOML document, returning a new document (the input is unchanged). */
export function applyEnvOverrides(
  document: Record<string, unknown>,
  overrides: readonly EnvOverride[],
): Record<string, unknown> {
  return overrides.reduce((result, { path, value }) => setIn(result, path, value), document);
}

function setIn(
  table: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): Record<string, unknown> {
  const [key, ...rest] = path;
  if (key === undefined) return table;
  const existing = table[key];
  const next =
    rest.length > 0
      ? setIn(isTable(existing) ? existing : {}, rest, value)
      : isTable(existing) && isTable(value)
        ? deepMerge(existing, value)
        : value;
  return withEntry(table, key, next);
}

function deepMerge(
  base: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  return Object.entries(patch).reduce((merged, [key, value]) => {
    const existing = merged[key];
    return withEntry(
      merged,
      key,
      isTable(existing) && isTable(value) ? deepMerge(existing, value) : value,
    );
  }, base);
}

/** A copy with `key` set as an own property (so a `__proto__` key is data, never a prototype). */
function withEntry(
  table: Record<string, unknown>,
  key: string,
  value: unknown,
): Record<string, unknown> {
  return Object.fromEntries([...Object.entries(table).filter(([k]) => k !== key), [key, value]]);
}

function keyForSegment(parentPath: readonly string[], segment: string): string {
  const lower = segment.toLowerCase();
  if (parentPath.length === 1 && parentPath[0] === "targets") return lower.replaceAll("_", "-");
  const inTargetTable =
    parentPath[0] === "targets" &&
    parentPath.length >= 3 &&
    (parentPath[2] === "config" || parentPath[2] === "secrets");
  if (inTargetTable)
    return lower.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
  return lower;
}

type ZodSchema = z.core.$ZodType;

type LeafKind = "number" | "boolean" | "string" | "structured" | "json-or-string" | "free";

/** The schema at `path`, looking through optional/default/transform wrappers; undefined if none. */
function schemaAt(schema: ZodSchema, path: readonly string[]): ZodSchema | undefined {
  let current: ZodSchema | undefined = unwrap(schema);
  for (const segment of path) {
    if (current instanceof z.ZodObject) {
      const shape: Record<string, ZodSchema> = current.shape;
      current = Object.hasOwn(shape, segment) ? shape[segment] : undefined;
    } else if (current instanceof z.ZodRecord) {
      current = current.valueType;
    } else if (current instanceof z.ZodUnknown) {
      return current;
    } else {
      return undefined;
    }
    current = current === undefined ? undefined : unwrap(current);
  }
  return current;
}

function unwrap(schema: ZodSchema): ZodSchema {
  let current = schema;
  for (;;) {
    if (
      current instanceof z.ZodOptional ||
      current instanceof z.ZodDefault ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodNullable
    ) {
      current = current.unwrap();
    } else if (current instanceof z.ZodPipe) {
      current = current.in;
    } else {
      return current;
    }
  }
}

function leafKind(schema: ZodSchema | undefined): LeafKind {
  if (schema instanceof z.ZodNumber) return "number";
  if (schema instanceof z.ZodBoolean) return "boolean";
  if (
    schema instanceof z.ZodString ||
    schema instanceof z.ZodEnum ||
    schema instanceof z.ZodLiteral
  ) {
    return "string";
  }
  if (
    schema instanceof z.ZodObject ||
    schema instanceof z.ZodRecord ||
    schema instanceof z.ZodArray
  ) {
    return "structured";
  }
  if (schema instanceof z.ZodUnion) return "json-or-string";
  if (schema instanceof z.ZodUnknown) return "free";
  // Not a key of the schema: keep the text; validation reports the unknown key.
  return "string";
}

function coerce(raw: string, kind: LeafKind): unknown {
  switch (kind) {
    case "number":
      return /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
    case "boolean": {
      const lower = raw.trim().toLowerCase();
      if (lower === "true" || lower === "1") return true;
      if (lower === "false" || lower === "0") return false;
      return raw;
    }
    case "string":
      return raw;
    case "structured":
      return parseJson(raw) ?? raw;
    case "json-or-string":
      return /^\s*[[{]/.test(raw) ? (parseJson(raw) ?? raw) : raw;
    case "free":
      return parseJson(raw) ?? raw;
  }
}

const unsafeJson = Symbol("unsafe JSON");
const unsafeKeys = new Set(["__proto__", "constructor"]);

/** The parsed value, undefined when `raw` is not JSON, or `unsafeJson` (same rule as the file). */
function parseJson(raw: string): unknown {
  let unsafe = false;
  let value: unknown;
  try {
    value = JSON.parse(raw, (key, item: unknown) => {
      if (unsafeKeys.has(key)) unsafe = true;
      return item;
    });
  } catch {
    return undefined;
  }
  return unsafe ? unsafeJson : value;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

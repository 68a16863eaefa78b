import { z } from "zod";
import { isJsonObject, type JsonObject, type JsonValue } from "./json";

/**
 * Forms for target config, target secrets and binding config: a JSON Schema generated from the
 * definition's zod schema (the one source of truth) plus UI hints under `x-keyway-ui`, so the
 * console can render a form without a second, hand-kept description of the fields.
 */

export const formHintSchema = z.strictObject({
  label: z.string().optional(),
  help: z.string().optional(),
  placeholder: z.string().optional(),
  widget: z
    .enum(["text", "password", "textarea", "select", "checkbox", "url", "number", "list"])
    .optional(),
  order: z.number().int().optional(),
  advanced: z.boolean().optional(),
});

export type FormHint = z.infer<typeof formHintSchema>;

/** Hints keyed by dotted field path, e.g. "repositories" or "auth.header". */
export type FormHints = Record<string, FormHint>;

/** A JSON Schema document (draft 2020-12, input side) with `x-keyway-ui` hints. */
export type JsonSchemaForm = JsonObject;

export const FORM_UI_KEY = "x-keyway-ui";

export type FormHintErrorCode = "unknown_field" | "invalid_hint" | "unsupported_ref";

/** A hint that cannot be placed: a definition bug, reported when the form is built. */
export class FormHintError extends Error {
  override readonly name = "FormHintError";
  constructor(
    readonly code: FormHintErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ToJsonSchemaFormOptions {
  hints?: FormHints;
  /** Every leaf is write-only and, when it is a string without a widget hint, a password field. */
  secret?: boolean;
}

/**
 * Builds the form schema for the *input* side of `schema` (fields with defaults are optional, as a
 * user may leave them out). Types with no JSON Schema equivalent become `{}` rather than failing,
 * so one exotic field cannot take a whole form down. Throws `FormHintError` when a hint names a
 * field the schema does not have or is itself malformed.
 */
export function toJsonSchemaForm(
  schema: z.ZodType,
  options: ToJsonSchemaFormOptions = {},
): JsonSchemaForm {
  const generated = z.toJSONSchema(schema, {
    io: "input",
    unrepresentable: "any",
    // Inline reused schemas so a hint on one field never lands on a definition shared by others.
    reused: "inline",
  });
  const form = toJsonObject(generated);

  for (const [path, rawHint] of Object.entries(options.hints ?? {})) {
    const parsed = formHintSchema.safeParse(rawHint);
    if (!parsed.success) {
      throw new FormHintError(
        "invalid_hint",
        path,
        `form hint "${path}": ${z.prettifyError(parsed.error)}`,
      );
    }
    const ui = stripUndefined(parsed.data);
    for (const node of resolveField(form, path)) node[FORM_UI_KEY] = { ...ui };
  }

  if (options.secret === true) markSecretLeaves(form);
  return form;
}

/** Copies the generator's output into plain JSON, proving its shape instead of asserting it. */
function toJsonObject(value: unknown): JsonObject {
  // Defaults of unrepresentable types (e.g. bigint) may survive into `default`; keep them readable.
  const text = JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "bigint" ? v.toString() : v,
  );
  const parsed: unknown = JSON.parse(text);
  if (!isJsonObject(parsed))
    throw new TypeError("toJsonSchemaForm: schema did not produce an object");
  return parsed;
}

function stripUndefined(hint: FormHint): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(hint)) if (value !== undefined) out[key] = value;
  return out;
}

// Keywords under which a schema's alternatives or parts live; a field inside a nullable or union
// object is found in whichever branches declare it.
const BRANCH_KEYWORDS = ["anyOf", "oneOf", "allOf"] as const;

/**
 * The property schemas a dotted path names. Walks `properties`, union branches and array `items`
 * (so "headers.name" reaches a field of a list of objects). Each path must name a real field.
 */
function resolveField(root: JsonObject, path: string): JsonObject[] {
  const segments = path.split(".");
  if (path === "" || segments.some((s) => s === "")) {
    throw new FormHintError("unknown_field", path, `form hint "${path}": empty field path segment`);
  }
  let nodes: JsonObject[] = [root];
  segments.forEach((segment, index) => {
    const next: JsonObject[] = [];
    for (const node of nodes) collectProperty(node, segment, path, next);
    if (next.length === 0) {
      const at = segments.slice(0, index + 1).join(".");
      throw new FormHintError(
        "unknown_field",
        path,
        `form hint "${path}": the schema has no field "${at}"`,
      );
    }
    nodes = next;
  });
  return nodes;
}

function collectProperty(node: JsonObject, key: string, path: string, out: JsonObject[]): void {
  if (typeof node.$ref === "string") {
    throw new FormHintError(
      "unsupported_ref",
      path,
      `form hint "${path}": cannot place a hint inside the referenced schema ${node.$ref}; ` +
        "hint the referencing field or avoid registering the nested schema with an id",
    );
  }
  const properties = node.properties;
  if (isJsonObject(properties) && Object.hasOwn(properties, key)) {
    const property = properties[key];
    if (isJsonObject(property)) out.push(property);
  }
  for (const keyword of BRANCH_KEYWORDS) {
    const branches = node[keyword];
    if (!Array.isArray(branches)) continue;
    for (const branch of branches)
      if (isJsonObject(branch)) collectProperty(branch, key, path, out);
  }
  const items = node.items;
  if (isJsonObject(items)) collectProperty(items, key, path, out);
}

/**
 * Marks every leaf field `writeOnly` (the API never returns secrets, and the form says so) and
 * gives string leaves the password widget unless a hint chose another. Definitions in `$defs`
 * are walked too, because a secret schema's shared parts are as secret as the rest.
 */
function markSecretLeaves(root: JsonObject): void {
  const visit = (node: JsonObject): void => {
    const fields = fieldSchemasOf(node);
    if (fields.length === 0 && !hasReference(node)) {
      markLeaf(node);
      return;
    }
    for (const field of fields) visit(field);
  };
  visit(root);
  const defs = root.$defs;
  if (isJsonObject(defs)) {
    for (const def of Object.values(defs)) if (isJsonObject(def)) visit(def);
  }
}

/** Schemas of the fields nested in `node`, through union branches and array items. */
function fieldSchemasOf(node: JsonObject): JsonObject[] {
  const out: JsonObject[] = [];
  const properties = node.properties;
  if (isJsonObject(properties)) {
    for (const value of Object.values(properties)) if (isJsonObject(value)) out.push(value);
  }
  for (const keyword of BRANCH_KEYWORDS) {
    const branches = node[keyword];
    if (!Array.isArray(branches)) continue;
    for (const branch of branches) if (isJsonObject(branch)) out.push(...fieldSchemasOf(branch));
  }
  const items = node.items;
  if (isJsonObject(items)) out.push(...fieldSchemasOf(items));
  return out;
}

/** True when the value's shape lives in a `$ref` target (walked separately), not in `node`. */
function hasReference(node: JsonObject): boolean {
  if (typeof node.$ref === "string") return true;
  return BRANCH_KEYWORDS.some((keyword) => {
    const branches = node[keyword];
    return Array.isArray(branches) && branches.some((b) => isJsonObject(b) && hasReference(b));
  });
}

function markLeaf(node: JsonObject): void {
  node.writeOnly = true;
  if (!acceptsString(node)) return;
  const existing = node[FORM_UI_KEY];
  const ui: JsonObject = isJsonObject(existing) ? existing : {};
  if (ui.widget === undefined) ui.widget = "password";
  node[FORM_UI_KEY] = ui;
}

function acceptsString(node: JsonValue): boolean {
  if (!isJsonObject(node)) return false;
  const type = node.type;
  if (type === "string" || (Array.isArray(type) && type.includes("string"))) return true;
  return BRANCH_KEYWORDS.some((keyword) => {
    const branches = node[keyword];
    return Array.isArray(branches) && branches.some(acceptsString);
  });
}

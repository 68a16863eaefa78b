/**
 * Forms generated from the definitions' JSON Schemas (`toJsonSchemaForm`, with `x-keyway-ui`
 * hints), and the way back: posted fields to the JSON the API takes. Nothing here knows a
 * provider; a new definition's fields appear in the console without console code.
 *
 * Field names are dotted paths under a prefix (`config.baseUrl`, `b.0.config.repositories`);
 * issues from the API (`config.baseUrl`, `bindings.0.config.repositories`) are matched to the
 * field they name and shown beside it, linked with `aria-describedby`.
 */

type Json = Record<string, unknown>;

export interface FormIssue {
  field: string;
  message: string;
}

export type PostedForm = Record<string, string | undefined>;

interface Hint {
  label?: string;
  help?: string;
  placeholder?: string;
  widget?: string;
  order?: number;
  advanced?: boolean;
}

type FieldKind =
  | "text"
  | "password"
  | "textarea"
  | "url"
  | "number"
  | "checkbox"
  | "select"
  | "list"
  | "object"
  | "json";

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function hintOf(schema: Json): Hint {
  const hint = schema["x-keyway-ui"];
  return isObject(hint) ? (hint as Hint) : {};
}

/** Unwraps `anyOf: [X, {type: "null"}]` (nullable fields) to X. */
function effective(schema: Json): Json {
  const anyOf = schema.anyOf;
  if (Array.isArray(anyOf)) {
    const nonNull = anyOf.filter((s) => isObject(s) && s.type !== "null");
    if (nonNull.length === 1 && isObject(nonNull[0]))
      return { ...nonNull[0], ...withoutAnyOf(schema) };
  }
  return schema;
}

function withoutAnyOf(schema: Json): Json {
  const { anyOf: _anyOf, ...rest } = schema;
  return rest;
}

function typeOf(schema: Json): string | undefined {
  const type = schema.type;
  if (typeof type === "string") return type;
  if (Array.isArray(type)) return type.find((t) => t !== "null");
  return undefined;
}

function kindOf(schema: Json, secret: boolean): FieldKind {
  const hint = hintOf(schema);
  const type = typeOf(schema);
  if (Array.isArray(schema.enum) && schema.enum.every((v) => typeof v === "string"))
    return "select";
  if (type === "boolean") return "checkbox";
  if (type === "integer" || type === "number") return "number";
  if (type === "string") {
    if (secret || hint.widget === "password") return "password";
    if (hint.widget === "textarea") return "textarea";
    if (hint.widget === "url" || schema.format === "uri") return "url";
    return "text";
  }
  if (type === "array" && isObject(schema.items) && typeOf(schema.items) === "string")
    return "list";
  if (type === "object" && isObject(schema.properties)) return "object";
  return "json";
}

function orderedProperties(schema: Json): [string, Json][] {
  const properties = isObject(schema.properties) ? schema.properties : {};
  return Object.entries(properties)
    .filter((entry): entry is [string, Json] => isObject(entry[1]))
    .map(([key, value]) => [key, effective(value)] as [string, Json])
    .sort((a, b) => (hintOf(a[1]).order ?? 1000) - (hintOf(b[1]).order ?? 1000));
}

function idFor(name: string): string {
  return `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

function issuesAt(issues: readonly FormIssue[], path: string): FormIssue[] {
  return issues.filter((issue) => issue.field === path);
}

export interface SchemaFieldsProps {
  schema: Json;
  /** Prefix of the posted field names, e.g. `config` or `b.0.config`. */
  name: string;
  /** Prefix of the API's issue paths for these fields, e.g. `config` or `bindings.0.config`. */
  issuePath: string;
  values?: unknown;
  issues?: readonly FormIssue[];
  /** Write-only fields: password inputs, never prefilled. */
  secret?: boolean;
}

/** The inputs of an object schema's properties (nested objects as fieldsets). */
export function SchemaFields(props: SchemaFieldsProps) {
  const values = isObject(props.values) ? props.values : {};
  const required = new Set(Array.isArray(props.schema.required) ? props.schema.required : []);
  const fields = orderedProperties(props.schema);
  if (fields.length === 0) return <p class="help">No settings.</p>;
  return (
    <>
      {fields.map(([key, schema]) => (
        <SchemaField
          schema={schema}
          fieldKey={key}
          name={`${props.name}.${key}`}
          issuePath={`${props.issuePath}.${key}`}
          value={values[key]}
          required={required.has(key)}
          issues={props.issues ?? []}
          secret={props.secret === true}
        />
      ))}
    </>
  );
}

function SchemaField(props: {
  schema: Json;
  fieldKey: string;
  name: string;
  issuePath: string;
  value: unknown;
  required: boolean;
  issues: readonly FormIssue[];
  secret: boolean;
}) {
  const { schema, name } = props;
  const hint = hintOf(schema);
  const id = idFor(name);
  const label = hint.label ?? (typeof schema.title === "string" ? schema.title : props.fieldKey);
  const help =
    hint.help ?? (typeof schema.description === "string" ? schema.description : undefined);
  const mine = issuesAt(props.issues, props.issuePath);
  const describedBy = [help ? `${id}-help` : "", mine.length > 0 ? `${id}-issue` : ""]
    .filter(Boolean)
    .join(" ");
  const kind = kindOf(schema, props.secret);
  const invalid = mine.length > 0 ? "true" : undefined;
  const common = {
    id,
    name,
    "aria-describedby": describedBy || undefined,
    "aria-invalid": invalid,
    required: props.required && kind !== "checkbox" && !props.secret ? true : undefined,
  };
  const issueText =
    mine.length > 0 ? (
      <p class="issue" id={`${id}-issue`}>
        {mine.map((issue) => issue.message).join("; ")}
      </p>
    ) : null;
  const helpText = help ? (
    <p class="help" id={`${id}-help`}>
      {help}
    </p>
  ) : null;
  const labelText = `${label}${props.required ? " (required)" : ""}`;

  if (kind === "object") {
    return (
      <fieldset aria-invalid={invalid} aria-describedby={describedBy || undefined}>
        <legend>{labelText}</legend>
        {helpText}
        {issueText}
        <SchemaFields
          schema={schema}
          name={name}
          issuePath={props.issuePath}
          values={props.value}
          issues={props.issues}
          secret={props.secret}
        />
      </fieldset>
    );
  }
  if (kind === "checkbox") {
    const checked = props.value === undefined ? schema.default === true : props.value === true;
    return (
      <div class="field">
        <div class="actions">
          <input type="checkbox" {...common} value="true" checked={checked} />
          <label for={id}>{labelText}</label>
        </div>
        {helpText}
        {issueText}
      </div>
    );
  }
  let input: unknown;
  const placeholder = hint.placeholder;
  if (kind === "select") {
    const options = (schema.enum as string[]) ?? [];
    const current = typeof props.value === "string" ? props.value : schema.default;
    input = (
      <select {...common}>
        {props.required ? null : <option value="">(default)</option>}
        {options.map((option) => (
          <option value={option} selected={option === current}>
            {option}
          </option>
        ))}
      </select>
    );
  } else if (kind === "list") {
    const lines = Array.isArray(props.value) ? props.value.map(String).join("\n") : "";
    input = (
      <textarea {...common} placeholder={placeholder ?? "one per line"}>
        {lines}
      </textarea>
    );
  } else if (kind === "json") {
    const text = props.value === undefined ? "" : JSON.stringify(props.value, null, 2);
    input = (
      <textarea {...common} placeholder={placeholder ?? "JSON"}>
        {text}
      </textarea>
    );
  } else if (kind === "textarea") {
    input = (
      <textarea {...common} placeholder={placeholder}>
        {typeof props.value === "string" ? props.value : ""}
      </textarea>
    );
  } else {
    const type =
      kind === "password"
        ? "password"
        : kind === "url"
          ? "url"
          : kind === "number"
            ? "number"
            : "text";
    const value =
      kind === "password" || props.value === undefined || props.value === null
        ? undefined
        : String(props.value);
    input = (
      <input
        type={type}
        {...common}
        value={value}
        placeholder={placeholder}
        autocomplete={kind === "password" ? "new-password" : "off"}
      />
    );
  }
  return (
    <div class="field">
      <label for={id}>{labelText}</label>
      {helpText}
      {input as never}
      {issueText}
    </div>
  );
}

/**
 * The JSON value of the fields `SchemaFields` rendered under `name`: empty inputs are left out
 * (the API applies defaults and reports missing required fields), numbers and lists converted,
 * JSON fields parsed. Text the conversion cannot read is passed on as text, so the API's
 * validation names the field.
 */
export function readSchemaValues(schema: Json, form: PostedForm, name: string): Json {
  const out: Json = {};
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  for (const [key, property] of orderedProperties(schema)) {
    const field = `${name}.${key}`;
    const kind = kindOf(property, false);
    if (kind === "object") {
      const nested = readSchemaValues(property, form, field);
      if (Object.keys(nested).length > 0 || required.has(key)) out[key] = nested;
      continue;
    }
    const raw = form[field];
    if (kind === "checkbox") {
      if (raw === "true") out[key] = true;
      else if (required.has(key) || "default" in property) out[key] = false;
      continue;
    }
    if (raw === undefined || raw.trim() === "") continue;
    if (kind === "number") {
      const n = Number(raw);
      out[key] = Number.isFinite(n) ? n : raw;
    } else if (kind === "list") {
      out[key] = raw
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter((line) => line !== "");
    } else if (kind === "json") {
      try {
        out[key] = JSON.parse(raw);
      } catch {
        out[key] = raw;
      }
    } else {
      out[key] = raw;
    }
  }
  return out;
}

/** String fields of a posted body (files and repeated names dropped: the console posts neither). */
export function postedForm(body: Record<string, unknown>): PostedForm {
  const out: PostedForm = {};
  for (const [key, value] of Object.entries(body)) {
    if (typeof value === "string") out[key] = value;
    else if (Array.isArray(value) && typeof value[0] === "string") out[key] = value[0];
  }
  return out;
}

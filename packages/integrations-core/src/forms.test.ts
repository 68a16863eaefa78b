import { describe, expect, it } from "vitest";
import { z } from "zod";
import { FormHintError, type FormHints, toJsonSchemaForm } from "./forms";
import { isJsonObject, type JsonObject, type JsonValue } from "./json";

/** Follows `properties` by a dotted path, failing the test when a step is not an object. */
function at(form: JsonValue, path: string): JsonObject {
  let node: JsonValue = form;
  for (const segment of path.split(".")) {
    if (!isJsonObject(node) || !isJsonObject(node.properties))
      throw new Error(`no properties at ${path}`);
    const next = node.properties[segment];
    if (next === undefined) throw new Error(`no field ${segment} in ${path}`);
    node = next;
  }
  if (!isJsonObject(node)) throw new Error(`${path} is not a schema object`);
  return node;
}

const githubBinding = z.strictObject({
  repositories: z.array(z.string().regex(/^[^/]+\/[^/]+$/)).min(1),
  permissions: z.enum(["read", "write"]).default("read"),
  note: z.string().optional(),
  auth: z.strictObject({
    header: z.string().default("Authorization"),
    scheme: z.string().optional(),
  }),
});

describe("toJsonSchemaForm", () => {
  it("keeps $schema and describes a nested object with required and optional fields", () => {
    const form = toJsonSchemaForm(githubBinding);
    expect(form.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(form.type).toBe("object");
    // Input side: fields with defaults may be left out, so only the rest are required.
    expect(form.required).toEqual(["repositories", "auth"]);
    expect(form.additionalProperties).toBe(false);
    const auth = at(form, "auth");
    expect(auth.type).toBe("object");
    expect(auth.required ?? []).toEqual([]);
    expect(at(form, "auth.scheme")).toEqual({ type: "string" });
  });

  it("renders an enum as a select-compatible string enum with its default", () => {
    expect(at(toJsonSchemaForm(githubBinding), "permissions")).toEqual({
      type: "string",
      enum: ["read", "write"],
      default: "read",
    });
  });

  it("renders an array of strings with its item constraints", () => {
    const repositories = at(toJsonSchemaForm(githubBinding), "repositories");
    expect(repositories.type).toBe("array");
    expect(repositories.minItems).toBe(1);
    expect(repositories.items).toEqual({ type: "string", pattern: "^[^/]+\\/[^/]+$" });
  });

  it("carries default values and descriptions", () => {
    const schema = z.object({
      baseUrl: z.url().default("https://api.openai.com/v1").describe("API base URL"),
      retries: z.number().int().min(0).default(2),
      verbose: z.boolean().default(false),
    });
    const form = toJsonSchemaForm(schema);
    expect(at(form, "baseUrl")).toMatchObject({
      type: "string",
      default: "https://api.openai.com/v1",
      description: "API base URL",
    });
    expect(at(form, "retries")).toMatchObject({ type: "integer", default: 2, minimum: 0 });
    expect(at(form, "verbose")).toEqual({ type: "boolean", default: false });
    expect(form.required ?? []).toEqual([]);
  });

  it("places hints at top-level and nested paths as x-keyway-ui", () => {
    const hints: FormHints = {
      repositories: { label: "Repositories", widget: "list", help: "owner/repo", order: 1 },
      "auth.header": { label: "Header", placeholder: "Authorization", advanced: true },
    };
    const form = toJsonSchemaForm(githubBinding, { hints });
    expect(at(form, "repositories")["x-keyway-ui"]).toEqual({
      label: "Repositories",
      widget: "list",
      help: "owner/repo",
      order: 1,
    });
    expect(at(form, "auth.header")["x-keyway-ui"]).toEqual({
      label: "Header",
      placeholder: "Authorization",
      advanced: true,
    });
    expect(at(form, "auth")["x-keyway-ui"]).toBeUndefined();
    expect(at(form, "permissions")["x-keyway-ui"]).toBeUndefined();
  });

  it("finds fields inside nullable objects and lists of objects", () => {
    const schema = z.object({
      proxy: z.object({ host: z.string() }).nullable(),
      headers: z.array(z.object({ name: z.string(), value: z.string() })),
    });
    const form = toJsonSchemaForm(schema, {
      hints: { "proxy.host": { label: "Proxy host" }, "headers.name": { label: "Header name" } },
    });
    expect(JSON.stringify(at(form, "proxy"))).toContain('"x-keyway-ui":{"label":"Proxy host"}');
    const items = at(form, "headers").items;
    if (!isJsonObject(items)) throw new Error("items is not an object");
    expect(at(items, "name")["x-keyway-ui"]).toEqual({ label: "Header name" });
  });

  it("does not leak a hint onto other fields built from the same zod schema", () => {
    const name = z.string();
    const form = toJsonSchemaForm(z.object({ first: name, second: name }), {
      hints: { first: { label: "First" } },
    });
    expect(at(form, "first")["x-keyway-ui"]).toEqual({ label: "First" });
    expect(at(form, "second")["x-keyway-ui"]).toBeUndefined();
  });

  it("marks every leaf of a secret schema write-only, string leaves as passwords", () => {
    const secrets = z.strictObject({
      clientSecret: z.string(),
      privateKeyPem: z.string(),
      webhook: z.object({ secret: z.string().optional(), enabled: z.boolean() }),
      rotatedAt: z.string().nullable(),
    });
    const form = toJsonSchemaForm(secrets, {
      secret: true,
      hints: { privateKeyPem: { widget: "textarea", label: "Private key (PEM)" } },
    });
    expect(at(form, "clientSecret")).toEqual({
      type: "string",
      writeOnly: true,
      "x-keyway-ui": { widget: "password" },
    });
    expect(at(form, "privateKeyPem")).toMatchObject({
      writeOnly: true,
      "x-keyway-ui": { widget: "textarea", label: "Private key (PEM)" },
    });
    expect(at(form, "webhook.secret")).toMatchObject({
      writeOnly: true,
      "x-keyway-ui": { widget: "password" },
    });
    // A boolean is write-only like every secret leaf, but a password box would make no sense.
    expect(at(form, "webhook.enabled")).toEqual({ type: "boolean", writeOnly: true });
    expect(at(form, "rotatedAt")).toMatchObject({
      writeOnly: true,
      "x-keyway-ui": { widget: "password" },
    });
    // Objects are containers, not leaves.
    expect(at(form, "webhook").writeOnly).toBeUndefined();
    expect(form.writeOnly).toBeUndefined();
  });

  it("leaves non-secret forms without writeOnly", () => {
    expect(JSON.stringify(toJsonSchemaForm(githubBinding))).not.toContain("writeOnly");
  });

  it("turns unrepresentable types into {} instead of failing", () => {
    const schema = z.object({
      big: z.bigint(),
      when: z.date(),
      name: z.string().transform((s) => s.length),
    });
    const form = toJsonSchemaForm(schema);
    expect(at(form, "big")).toEqual({});
    expect(at(form, "when")).toEqual({});
    // Input side of a transform: what the user types.
    expect(at(form, "name")).toEqual({ type: "string" });
  });

  it("throws a FormHintError naming the missing field for a hint on a non-existent field", () => {
    const build = (hints: FormHints) => () => toJsonSchemaForm(githubBinding, { hints });
    expect(build({ repos: { label: "x" } })).toThrow(FormHintError);
    expect(build({ repos: { label: "x" } })).toThrow('the schema has no field "repos"');
    expect(build({ "auth.missing": { label: "x" } })).toThrow('no field "auth.missing"');
    // A leaf has no fields of its own.
    expect(build({ "note.length": { label: "x" } })).toThrow('no field "note.length"');
    expect(build({ "": { label: "x" } })).toThrow(FormHintError);
    try {
      build({ "auth..header": {} })();
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(FormHintError);
      if (error instanceof FormHintError) {
        expect(error.code).toBe("unknown_field");
        expect(error.path).toBe("auth..header");
      }
    }
  });

  it("rejects a malformed hint", () => {
    const hints: unknown = { repositories: { widget: "slider" } };
    const build = () => Reflect.apply(toJsonSchemaForm, undefined, [githubBinding, { hints }]);
    expect(build).toThrow(FormHintError);
    expect(build).toThrow('form hint "repositories"');
  });

  it("refuses to place a hint inside a referenced definition", () => {
    const shared = z.object({ x: z.string() }).meta({ id: "KeywayFormsTestShared" });
    const schema = z.object({ a: shared, b: shared });
    expect(() => toJsonSchemaForm(schema, { hints: { "a.x": { label: "X" } } })).toThrow(
      expect.objectContaining({ code: "unsupported_ref" }),
    );
    // Hinting the referencing field itself is fine.
    const form = toJsonSchemaForm(schema, { hints: { a: { label: "A" } } });
    expect(at(form, "a")).toEqual({
      $ref: "#/$defs/KeywayFormsTestShared",
      "x-keyway-ui": { label: "A" },
    });
  });

  it("does not mutate anything shared between calls", () => {
    const first = toJsonSchemaForm(githubBinding, {
      hints: { note: { label: "Note" } },
      secret: true,
    });
    const second = toJsonSchemaForm(githubBinding);
    expect(at(first, "note")["x-keyway-ui"]).toBeDefined();
    expect(at(second, "note")).toEqual({ type: "string" });
  });
});

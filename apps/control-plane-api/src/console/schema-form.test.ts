import { describe, expect, it } from "vitest";
import { readSchemaValues } from "./schema-form";

const schema = {
  type: "object",
  properties: {
    baseUrl: { type: "string", format: "uri" },
    retries: { type: "integer" },
    verbose: { type: "boolean", default: false },
    hosts: { type: "array", items: { type: "string" } },
    extra: { type: "object", additionalProperties: true },
    auth: {
      type: "object",
      properties: {
        header: { type: "string" },
        scheme: { type: "string", enum: ["Bearer", "Token"] },
      },
    },
    note: { anyOf: [{ type: "string" }, { type: "null" }] },
  },
  required: ["baseUrl"],
};

describe("readSchemaValues", () => {
  it("turns posted fields into the JSON the schema describes", () => {
    const value = readSchemaValues(
      schema,
      {
        "config.baseUrl": "https://api.example.com",
        "config.retries": "3",
        "config.verbose": "true",
        "config.hosts": "a.example.com\n\n b.example.com \r\n",
        "config.extra": '{"k":1}',
        "config.auth.header": "authorization",
        "config.auth.scheme": "Bearer",
        "config.note": "hi",
      },
      "config",
    );
    expect(value).toEqual({
      baseUrl: "https://api.example.com",
      retries: 3,
      verbose: true,
      hosts: ["a.example.com", "b.example.com"],
      extra: { k: 1 },
      auth: { header: "authorization", scheme: "Bearer" },
      note: "hi",
    });
  });

  it("leaves empty fields out, unchecks to false when the field has a default, and passes unreadable text on", () => {
    const value = readSchemaValues(
      schema,
      {
        "config.baseUrl": "",
        "config.retries": "many",
        "config.extra": "{not json",
        "config.auth.header": "",
      },
      "config",
    );
    expect(value).toEqual({ verbose: false, retries: "many", extra: "{not json" });
  });
});

import { type AnyIntegrationDefinition, defineIntegration } from "@keyway/integrations-core";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { fieldIssuesAt, parseTargetConfig, parseTargetSecrets } from "./target-config";

const registry = createCatalogueRegistry();

function definitionWith(schemas: {
  config?: z.ZodType;
  secrets?: z.ZodType;
}): AnyIntegrationDefinition {
  return defineIntegration({
    familyId: "probe",
    variantId: "probe",
    kind: "connector",
    displayName: "Probe",
    description: "test definition",
    logoKey: "probe",
    docsUrl: "https://example.com",
    targetConfigSchema: schemas.config ?? z.strictObject({}),
    targetSecretSchema: schemas.secrets ?? z.strictObject({}),
    connectionMethods: [{ id: "api-key", label: "API key", kind: "api-key" }],
    bindingConfigSchema: z.strictObject({}),
    compileBinding: () => ({}),
  });
}

describe("target config parsing", () => {
  it("applies the definition's defaults to the stored config", () => {
    const parsed = parseTargetConfig(registry.require("openai"), {});
    expect(parsed.ok && parsed.value).toMatchObject({ apiBaseUrl: "https://api.openai.com/v1" });
  });

  it("turns a schema that throws into an issue instead of an exception", () => {
    const throwing = definitionWith({
      config: z.object({ url: z.string() }).refine(() => {
        throw new TypeError("boom");
      }),
    });
    const parsed = parseTargetConfig(throwing, { url: "x" });
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && fieldIssuesAt("config", parsed.issues)).toEqual([
      { field: "config", code: "custom", message: expect.any(String) },
    ]);
  });

  it("reports a malformed GitHub Enterprise URL as a field issue", () => {
    const parsed = parseTargetConfig(registry.require("github-enterprise-server"), {
      webBaseUrl: "not a url",
      extra: 1,
    });
    expect(
      !parsed.ok &&
        fieldIssuesAt("config", parsed.issues)
          .map((i) => i.field)
          .sort(),
    ).toEqual(["config.extra", "config.webBaseUrl"]);
  });

  it("reports a malformed http-api token URL as a field issue", () => {
    const parsed = parseTargetConfig(registry.require("http-api"), {
      baseUrl: "https://api.example.com",
      oauth2: { tokenUrl: "not a url" },
    });
    expect(!parsed.ok && fieldIssuesAt("config", parsed.issues).map((i) => i.field)).toEqual([
      "config.oauth2.tokenUrl",
    ]);
  });

  it("never quotes a secret value in an issue message", () => {
    const secret = "s3cr3t-value-that-must-not-leak";
    const quoting = definitionWith({
      secrets: z.strictObject({
        key: z.string().refine((v) => v.startsWith("ok_"), { error: (i) => `bad: ${i.input}` }),
      }),
    });
    const parsed = parseTargetSecrets(quoting, { key: secret });
    expect(parsed.ok).toBe(false);
    const issues = !parsed.ok ? fieldIssuesAt("secrets", parsed.issues) : [];
    expect(issues.map((i) => i.field)).toEqual(["secrets.key"]);
    expect(JSON.stringify(issues)).not.toContain(secret);
  });
});

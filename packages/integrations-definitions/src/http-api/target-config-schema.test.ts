import { type ConnectionMethod, toJsonSchemaForm } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { httpApiDefinition } from "./definition";
import { httpApiTargetConfigSchema, httpApiTargetSecretSchema } from "./target-config-schema";

const issues = (config: unknown) => {
  const result = httpApiTargetConfigSchema.safeParse(config);
  return result.success
    ? []
    : result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
};
const paths = (config: unknown) => issues(config).map((i) => i.path);

describe("http-api target config", () => {
  it("requires a base URL: the generic connector has no provider default", () => {
    expect(paths({})).toEqual(["baseUrl"]);
  });

  it("fills in bearer auth and leaves methods and prefixes open", () => {
    expect(httpApiTargetConfigSchema.parse({ baseUrl: "https://api.acme.example/v1" })).toEqual({
      baseUrl: "https://api.acme.example/v1",
      auth: { type: "bearer" },
    });
  });

  it("parses every option together", () => {
    const config = {
      baseUrl: "https://api.acme.example/v1",
      allowedMethods: ["GET"],
      pathPrefixes: ["/v1/orders"],
      auth: { type: "header", name: "X-Api-Key", scheme: "Key" },
      oauth2: {
        tokenUrl: "https://auth.acme.example/oauth/token",
        scopes: ["orders:read"],
        audience: "https://api.acme.example",
        clientAuth: "body",
      },
      mcpServerUrl: "https://mcp.acme.example/mcp",
      mcpServerName: "acme",
      webhook: { scheme: "standard-webhooks" },
    };
    expect(httpApiTargetConfigSchema.parse(config)).toEqual(config);
    expect(
      httpApiTargetConfigSchema.parse({ ...config, oauth2: { tokenUrl: config.oauth2.tokenUrl } })
        .oauth2,
    ).toEqual({
      tokenUrl: config.oauth2.tokenUrl,
      clientAuth: "basic",
    });
  });

  it("refuses unknown fields at every level", () => {
    expect(paths({ baseUrl: "https://api.acme.example", extra: 1 })).toEqual([""]);
    expect(
      paths({ baseUrl: "https://api.acme.example", auth: { type: "bearer", scheme: "Token" } }),
    ).toEqual(["auth"]);
    expect(paths({ baseUrl: "https://api.acme.example", webhook: { scheme: "github" } })).toEqual([
      "webhook.scheme",
    ]);
  });

  it("refuses base URLs a route cannot be built from", () => {
    for (const baseUrl of [
      "ftp://api.acme.example",
      "https://api.acme.example/v1?x=1",
      "https://user:pw@api.acme.example",
      "https://[::1]/v1",
      "https://api.acme.example/a%2Fb",
      "not a url",
    ]) {
      expect(paths({ baseUrl }), baseUrl).toEqual(["baseUrl"]);
    }
  });

  it("requires path prefixes to lie under the base URL path and methods to be upper-case", () => {
    expect(
      paths({
        baseUrl: "https://api.acme.example/v1",
        pathPrefixes: ["/v1/orders", "/v10", "/", "orders", "/v1/a%5Cb"],
        allowedMethods: ["GET", "post"],
      }),
    ).toEqual([
      "allowedMethods.1",
      "pathPrefixes.3",
      "pathPrefixes.1",
      "pathPrefixes.2",
      "pathPrefixes.4",
    ]);
  });

  it("refuses credential headers the gateway owns and malformed auth settings", () => {
    for (const auth of [
      { type: "header", name: "Host" },
      { type: "header", name: "proxy-authorization" },
      { type: "header", name: "x api key" },
      { type: "header", name: "x-api-key", scheme: "Bad Scheme" },
      { type: "query", name: "api key" },
      { type: "basic", username: "a:b" },
      { type: "basic", username: "" },
      { type: "digest" },
    ]) {
      expect(
        paths({ baseUrl: "https://api.acme.example", auth }).length,
        JSON.stringify(auth),
      ).toBeGreaterThan(0);
    }
  });

  it("refuses an MCP server name without an MCP server URL, and bad names", () => {
    expect(paths({ baseUrl: "https://api.acme.example", mcpServerName: "acme" })).toEqual([
      "mcpServerName",
    ]);
    expect(
      paths({
        baseUrl: "https://api.acme.example",
        mcpServerUrl: "https://mcp.acme.example",
        mcpServerName: "Acme",
      }),
    ).toEqual(["mcpServerName"]);
  });

  it("refuses scopes with spaces", () => {
    expect(
      paths({
        baseUrl: "https://api.acme.example",
        oauth2: { tokenUrl: "https://auth.acme.example/token", scopes: ["a b"] },
      }),
    ).toEqual(["oauth2.scopes.0"]);
  });
});

describe("http-api target secrets", () => {
  it("accepts a whsec_ secret and nothing else", () => {
    expect(httpApiTargetSecretSchema.safeParse({}).success).toBe(true);
    expect(
      httpApiTargetSecretSchema.safeParse({
        webhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      }).success,
    ).toBe(true);
    expect(
      httpApiTargetSecretSchema.safeParse({ webhookSecret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" })
        .success,
    ).toBe(false);
    expect(httpApiTargetSecretSchema.safeParse({ webhookSecret: "whsec_c2hvcnQ=" }).success).toBe(
      false,
    );
    expect(httpApiTargetSecretSchema.safeParse({ other: "x" }).success).toBe(false);
  });
});

describe("http-api forms", () => {
  it("places every form hint on a real field", () => {
    expect(() =>
      toJsonSchemaForm(httpApiDefinition.targetConfigSchema, {
        hints: httpApiDefinition.targetConfigForm,
      }),
    ).not.toThrow();
    expect(() =>
      toJsonSchemaForm(httpApiDefinition.targetSecretSchema, {
        hints: httpApiDefinition.targetSecretForm,
        secret: true,
      }),
    ).not.toThrow();
    expect(() =>
      toJsonSchemaForm(httpApiDefinition.bindingConfigSchema, {
        hints: httpApiDefinition.bindingForm,
      }),
    ).not.toThrow();
    const methods: readonly ConnectionMethod[] = httpApiDefinition.connectionMethods;
    for (const method of methods) {
      const schema = method.configSchema;
      if (schema) {
        expect(() => toJsonSchemaForm(schema, { hints: method.configForm })).not.toThrow();
      }
    }
  });
});

import {
  type ConnectionMethod,
  type EgressRoute,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
} from "../testing/definition-contract";
import { atlassianDefinition } from "./definition";
import { atlassianTargetConfigSchema } from "./target-config-schema";

const API_TOKEN = "ATATT3xFfGF0-fixture-token-8c1e";

const fixture: DefinitionFixture = {
  target: { config: { siteUrl: "https://acme.atlassian.net" }, secrets: {} },
  connection: {
    methodId: "api-token",
    config: { email: "dev@acme.example" },
    secretValues: [API_TOKEN],
  },
  binding: { config: { mcpToolAllowlist: ["getJiraIssue", "searchJiraIssuesUsingJql"] } },
};

describeDefinitionContract(atlassianDefinition, fixture);

function compile(overrides: Partial<DefinitionFixture>) {
  const result = compileSingle(atlassianDefinition, { ...fixture, ...overrides });
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan;
}

const mcpRoute = (route: Partial<EgressRoute>): EgressRoute => ({
  id: "bind_fixture.route.0",
  bindingId: "bind_fixture",
  match: { hosts: ["mcp.atlassian.com"], pathPrefixes: ["/v1/mcp"] },
  upstream: { baseUrl: "https://mcp.atlassian.com" },
  auth: { type: "basic", name: "authorization", username: "dev@acme.example" },
  credential: { connectionId: "conn_fixture", secretType: "api_key" },
  ...route,
});

describe("atlassian compileBinding", () => {
  it("injects a personal API token as Basic (email:token) on the MCP server and the site's REST APIs", () => {
    const plan = compile({});
    expect(plan.routes).toEqual([
      mcpRoute({ mcp: { toolAllowlist: ["getJiraIssue", "searchJiraIssuesUsingJql"] } }),
      {
        id: "bind_fixture.route.1",
        bindingId: "bind_fixture",
        match: {
          hosts: ["acme.atlassian.net"],
          pathPrefixes: ["/rest", "/wiki/api", "/wiki/rest"],
        },
        upstream: { baseUrl: "https://acme.atlassian.net" },
        auth: { type: "basic", name: "authorization", username: "dev@acme.example" },
        credential: { connectionId: "conn_fixture", secretType: "api_key" },
      },
    ]);
    expect(plan.mcpServers).toEqual([
      {
        name: "atlassian",
        bindingId: "bind_fixture",
        transport: "streamable-http",
        url: "https://mcp.atlassian.com/v1/mcp",
      },
    ]);
    expect(plan.files).toEqual([]);
    expect(plan.env).toEqual([]);
  });

  it("injects a service account key as Bearer, on the MCP server only", () => {
    const plan = compile({
      connection: { methodId: "service-account", secretValues: ["sa-key"] },
      binding: { config: {} },
    });
    expect(plan.routes).toEqual([
      mcpRoute({ auth: { type: "bearer", name: "authorization", scheme: "Bearer" } }),
    ]);
  });

  it("makes only the MCP route when the target names no site", () => {
    const plan = compile({ target: { config: {}, secrets: {} }, binding: { config: {} } });
    expect(plan.routes).toEqual([mcpRoute({})]);
  });

  it("follows an operator-configured MCP URL", () => {
    const plan = compile({
      target: { config: { mcpUrl: "https://mcp.eu.atlassian.example/v1/mcp/" }, secrets: {} },
      binding: { config: {} },
    });
    expect(plan.routes).toEqual([
      mcpRoute({
        match: { hosts: ["mcp.eu.atlassian.example"], pathPrefixes: ["/v1/mcp"] },
        upstream: { baseUrl: "https://mcp.eu.atlassian.example" },
      }),
    ]);
    expect(plan.mcpServers).toEqual([
      {
        name: "atlassian",
        bindingId: "bind_fixture",
        transport: "streamable-http",
        url: "https://mcp.eu.atlassian.example/v1/mcp/",
      },
    ]);
  });

  it("refuses an api-token connection without a valid email", () => {
    const result = compileSingle(atlassianDefinition, {
      ...fixture,
      connection: { methodId: "api-token", config: { email: "not-an-email" }, secretValues: [] },
    });
    expect(
      result.ok ? [] : result.errors.map((e) => [e.code, e.issues?.map((i) => i.field)]),
    ).toEqual([["invalid_connection_config", ["email"]]]);
  });
});

describe("atlassian target config", () => {
  it("defaults to the public Rovo MCP server and Atlassian's OAuth 2.0 (3LO) endpoints", () => {
    expect(atlassianTargetConfigSchema.parse({})).toEqual({
      mcpUrl: "https://mcp.atlassian.com/v1/mcp",
      authorizationUrl: "https://auth.atlassian.com/authorize",
      tokenUrl: "https://auth.atlassian.com/oauth/token",
      apiUrl: "https://api.atlassian.com",
      scopes: ["read:jira-work", "write:jira-work", "read:jira-user", "offline_access"],
    });
  });

  it("takes a site only as an https origin", () => {
    for (const siteUrl of [
      "http://acme.atlassian.net",
      "https://acme.atlassian.net/wiki",
      "acme",
      "https://[::1]",
    ]) {
      expect(atlassianTargetConfigSchema.safeParse({ siteUrl }).success, siteUrl).toBe(false);
    }
    expect(
      atlassianTargetConfigSchema.safeParse({ siteUrl: "https://acme.atlassian.net/" }).success,
    ).toBe(true);
    expect(atlassianTargetConfigSchema.safeParse({ other: 1 }).success).toBe(false);
  });

  it("places every form hint on a real field", () => {
    expect(() =>
      toJsonSchemaForm(atlassianDefinition.targetConfigSchema, {
        hints: atlassianDefinition.targetConfigForm,
      }),
    ).not.toThrow();
    expect(() =>
      toJsonSchemaForm(atlassianDefinition.bindingConfigSchema, {
        hints: atlassianDefinition.bindingForm,
      }),
    ).not.toThrow();
    const methods: readonly ConnectionMethod[] = atlassianDefinition.connectionMethods;
    for (const method of methods) {
      const schema = method.configSchema;
      if (schema) {
        expect(() => toJsonSchemaForm(schema, { hints: method.configForm })).not.toThrow();
      }
    }
  });
});

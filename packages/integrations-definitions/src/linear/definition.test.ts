import { type CompileResult, toJsonSchemaForm } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
} from "../testing/definition-contract";
import { linearDefinition } from "./definition";

const fixture: DefinitionFixture = {
  target: {
    config: { clientId: "linear-client-id" },
    secrets: {
      clientSecret: "linear-client-secret-3f9a",
      webhookSecret: "linear-webhook-secret-77c1",
    },
  },
  connection: { methodId: "api-key", secretValues: ["lin_api_0123456789abcdef"] },
  binding: { config: { mcpToolAllowlist: ["list_issues", "get_issue"], teamKeys: ["ENG"] } },
  invalidBinding: {
    config: { teamKeys: ["eng", "ENG", "ENG"], mcpToolAllowlist: ["get_issue", "get_issue"] },
    issues: [
      { code: "linear.invalid_team_key", field: "teamKeys.0" },
      { code: "linear.duplicate_team_key", field: "teamKeys.2" },
      { code: "linear.duplicate_mcp_tool", field: "mcpToolAllowlist.1" },
    ],
  },
};

describeDefinitionContract(linearDefinition, fixture);
describeDefinitionContract(linearDefinition, {
  ...fixture,
  connection: {
    methodId: "oauth2",
    secretValues: ["lin_oauth_access_token_abc", "lin_refresh_xyz"],
  },
});

function planOf(result: CompileResult) {
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan;
}

describe("linear compile output", () => {
  const mcpRoute = {
    id: "bind_fixture.route.1",
    bindingId: "bind_fixture",
    match: { hosts: ["mcp.linear.app"], pathPrefixes: ["/mcp", "/sse"] },
    upstream: { baseUrl: "https://mcp.linear.app" },
    auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
    mcp: { toolAllowlist: ["get_issue", "list_issues"] },
  };

  it("sends an API key in Authorization without a scheme, and as Bearer to the MCP server", () => {
    const plan = planOf(compileSingle(linearDefinition, fixture));
    const credential = { connectionId: "conn_fixture", secretType: "api_key" };
    expect(plan.routes).toEqual([
      {
        id: "bind_fixture.route.0",
        bindingId: "bind_fixture",
        match: { hosts: ["api.linear.app"], pathPrefixes: ["/graphql"] },
        upstream: { baseUrl: "https://api.linear.app" },
        auth: { type: "header", name: "authorization" },
        credential,
      },
      { ...mcpRoute, credential },
    ]);
    expect(plan.mcpServers).toEqual([
      {
        name: "linear",
        bindingId: "bind_fixture",
        transport: "streamable-http",
        url: "https://mcp.linear.app/mcp",
      },
    ]);
    expect(plan.files).toEqual([]);
    expect(plan.env).toEqual([]);
    expect(plan.processes).toEqual([]);
  });

  it("sends an OAuth2 token as Bearer on both routes", () => {
    const plan = planOf(
      compileSingle(linearDefinition, {
        ...fixture,
        connection: { methodId: "oauth2", secretValues: [] },
      }),
    );
    const credential = { connectionId: "conn_fixture", secretType: "oauth2_access_token" };
    expect(plan.routes).toEqual([
      {
        id: "bind_fixture.route.0",
        bindingId: "bind_fixture",
        match: { hosts: ["api.linear.app"], pathPrefixes: ["/graphql"] },
        upstream: { baseUrl: "https://api.linear.app" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential,
      },
      { ...mcpRoute, credential },
    ]);
  });

  it("leaves out the tool allow-list when the binding sets none", () => {
    const plan = planOf(compileSingle(linearDefinition, fixture, { bindingConfig: {} }));
    expect(plan.routes[1]).not.toHaveProperty("mcp");
  });

  it("builds routes from overridden URLs and can leave the legacy SSE endpoint out", () => {
    const plan = planOf(
      compileSingle(linearDefinition, {
        ...fixture,
        target: {
          ...fixture.target,
          config: {
            apiUrl: "https://linear-proxy.internal:8443/v1/graphql",
            mcpUrl: "https://linear-proxy.internal:9443/mcp",
            mcpLegacySse: false,
          },
        },
      }),
    );
    expect(plan.routes.map((r) => ({ match: r.match, upstream: r.upstream }))).toEqual([
      {
        match: { hosts: ["linear-proxy.internal:8443"], pathPrefixes: ["/v1/graphql"] },
        upstream: { baseUrl: "https://linear-proxy.internal:8443" },
      },
      {
        match: { hosts: ["linear-proxy.internal:9443"], pathPrefixes: ["/mcp"] },
        upstream: { baseUrl: "https://linear-proxy.internal:9443" },
      },
    ]);
    expect(plan.mcpServers[0]).toMatchObject({ url: "https://linear-proxy.internal:9443/mcp" });
  });

  it("rejects unknown target config fields", () => {
    const result = compileSingle(linearDefinition, {
      ...fixture,
      target: { ...fixture.target, config: { apiKey: "nope" } },
    });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]?.code).toBe("invalid_target_config");
  });

  it("parses the registry's default target config to Linear's public URLs", () => {
    expect(linearDefinition.targetConfigSchema.parse({})).toEqual({
      apiUrl: "https://api.linear.app/graphql",
      mcpUrl: "https://mcp.linear.app/mcp",
      mcpLegacySse: true,
      authorizationUrl: "https://linear.app/oauth/authorize",
      tokenUrl: "https://api.linear.app/oauth/token",
      scopes: ["read", "write"],
    });
    expect(linearDefinition.targetSecretSchema.parse({})).toEqual({});
  });

  it("renders forms with its hints", () => {
    const target = toJsonSchemaForm(linearDefinition.targetConfigSchema, {
      hints: linearDefinition.targetConfigForm ?? {},
    });
    expect(target.type).toBe("object");
    toJsonSchemaForm(linearDefinition.targetSecretSchema, {
      hints: linearDefinition.targetSecretForm ?? {},
      secret: true,
    });
    toJsonSchemaForm(linearDefinition.bindingConfigSchema, {
      hints: linearDefinition.bindingForm ?? {},
    });
  });
});

import {
  compilePlan,
  createRegistry,
  type EgressRoute,
  type McpServer,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
} from "../testing/definition-contract";
import { httpApiDefinition } from "./definition";

const WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const API_KEY = "acme_live_9f2c4e7b1d8a";

const fixture: DefinitionFixture = {
  target: {
    config: {
      baseUrl: "https://api.acme.example/v2",
      allowedMethods: ["GET", "POST"],
      pathPrefixes: ["/v2/orders", "/v2/customers"],
      auth: { type: "header", name: "X-Api-Key" },
      mcpServerUrl: "https://mcp.acme.example/mcp",
      webhook: { scheme: "standard-webhooks" },
    },
    secrets: { webhookSecret: WEBHOOK_SECRET },
  },
  connection: { methodId: "api-key", secretValues: [API_KEY] },
  binding: {
    config: { pathPrefixes: ["/v2/orders"], methods: ["GET"], mcpToolAllowlist: ["list_orders"] },
  },
  invalidBinding: {
    config: { pathPrefixes: ["/v2/orders", "/v3"], methods: ["DELETE"] },
    issues: [
      { code: "http-api.path_outside_target", field: "pathPrefixes.1" },
      { code: "http-api.method_not_allowed", field: "methods.0" },
    ],
  },
};

describeDefinitionContract(httpApiDefinition, fixture);

interface CompileCase {
  target: Record<string, unknown>;
  binding?: Record<string, unknown>;
  methodId?: string;
  connectionConfig?: Record<string, unknown>;
}

function compile({ target, binding = {}, methodId = "api-key", connectionConfig }: CompileCase) {
  return compileSingle(httpApiDefinition, {
    target: { config: target, secrets: {} },
    connection: {
      methodId,
      ...(connectionConfig !== undefined ? { config: connectionConfig } : {}),
      secretValues: [],
    },
    binding: { config: binding },
  });
}

function routesOf(input: CompileCase): EgressRoute[] {
  const result = compile(input);
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan.routes;
}

function issuesOf(input: CompileCase): { code: string; field: string }[] {
  const result = compile(input);
  if (result.ok) throw new Error("expected the binding to be refused");
  expect(result.errors.map((e) => e.code)).toEqual(["binding_validation_failed"]);
  return (result.errors[0]?.issues ?? []).map(({ code, field }) => ({ code, field }));
}

const apiRoute = (route: Partial<EgressRoute>): EgressRoute => ({
  id: "bind_fixture.route.0",
  bindingId: "bind_fixture",
  match: { hosts: ["api.acme.example"], pathPrefixes: ["/v2"] },
  upstream: { baseUrl: "https://api.acme.example" },
  auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
  credential: { connectionId: "conn_fixture", secretType: "api_key" },
  ...route,
});

describe("http-api compileBinding", () => {
  it("compiles the fixture into the narrowed API route and an MCP route with the tool allow-list", () => {
    const result = compileSingle(httpApiDefinition, fixture);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.routes).toEqual([
      apiRoute({
        match: { hosts: ["api.acme.example"], methods: ["GET"], pathPrefixes: ["/v2/orders"] },
        auth: { type: "header", name: "x-api-key" },
      }),
      {
        id: "bind_fixture.route.1",
        bindingId: "bind_fixture",
        match: { hosts: ["mcp.acme.example"], pathPrefixes: ["/mcp"] },
        upstream: { baseUrl: "https://mcp.acme.example" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { connectionId: "conn_fixture", secretType: "api_key" },
        mcp: { toolAllowlist: ["list_orders"] },
      },
    ]);
    expect(result.plan.mcpServers).toEqual([
      {
        name: "http-api",
        bindingId: "bind_fixture",
        transport: "streamable-http",
        url: "https://mcp.acme.example/mcp",
      },
    ] satisfies McpServer[]);
    expect(result.plan.files).toEqual([]);
    expect(result.plan.env).toEqual([]);
  });

  it("defaults to bearer auth, any method and the base URL path", () => {
    expect(routesOf({ target: { baseUrl: "https://api.acme.example/v2/" } })).toEqual([
      apiRoute({}),
    ]);
  });

  it("uses / as the prefix for a base URL without a path and keeps a non-default port", () => {
    expect(routesOf({ target: { baseUrl: "http://Internal.Acme.example:8080" } })).toEqual([
      apiRoute({
        match: { hosts: ["internal.acme.example:8080"], pathPrefixes: ["/"] },
        upstream: { baseUrl: "http://internal.acme.example:8080" },
      }),
    ]);
  });

  it("injects a header with a scheme, lower-casing the header name", () => {
    const routes = routesOf({
      target: {
        baseUrl: "https://api.acme.example/v2",
        auth: { type: "header", name: "Authorization", scheme: "Token" },
      },
    });
    expect(routes).toEqual([
      apiRoute({ auth: { type: "header", name: "authorization", scheme: "Token" } }),
    ]);
  });

  it("injects a query parameter", () => {
    const routes = routesOf({
      target: { baseUrl: "https://api.acme.example/v2", auth: { type: "query", name: "api_key" } },
    });
    expect(routes).toEqual([apiRoute({ auth: { type: "query", name: "api_key" } })]);
  });

  it("injects Basic auth with the configured username", () => {
    const routes = routesOf({
      target: {
        baseUrl: "https://api.acme.example/v2",
        auth: { type: "basic", username: "acme-bot" },
      },
    });
    expect(routes).toEqual([
      apiRoute({ auth: { type: "basic", name: "authorization", username: "acme-bot" } }),
    ]);
  });

  it("takes the target's methods and prefixes when the binding does not narrow them", () => {
    const routes = routesOf({
      target: {
        baseUrl: "https://api.acme.example/v2",
        allowedMethods: ["POST", "GET"],
        pathPrefixes: ["/v2/orders", "/v2/%7Eteam"],
      },
    });
    expect(routes).toEqual([
      apiRoute({
        match: {
          hosts: ["api.acme.example"],
          methods: ["GET", "POST"],
          pathPrefixes: ["/v2/orders", "/v2/~team"],
        },
      }),
    ]);
  });

  it("narrows to the binding's methods and prefixes", () => {
    const routes = routesOf({
      target: {
        baseUrl: "https://api.acme.example/v2",
        pathPrefixes: ["/v2/orders", "/v2/customers"],
      },
      binding: { methods: ["GET", "HEAD"], pathPrefixes: ["/v2/orders/open", "/v2/customers"] },
    });
    expect(routes).toEqual([
      apiRoute({
        match: {
          hosts: ["api.acme.example"],
          methods: ["GET", "HEAD"],
          pathPrefixes: ["/v2/customers", "/v2/orders/open"],
        },
      }),
    ]);
  });

  it("uses the oauth2_access_token credential for client-credentials connections", () => {
    const routes = routesOf({
      target: {
        baseUrl: "https://api.acme.example/v2",
        oauth2: { tokenUrl: "https://auth.acme.example/oauth/token" },
        mcpServerUrl: "https://api.acme.example/mcp",
      },
      methodId: "client-credentials",
      connectionConfig: { clientId: "acme-client" },
    });
    const credential = { connectionId: "conn_fixture", secretType: "oauth2_access_token" };
    expect(routes).toEqual([
      apiRoute({ credential }),
      {
        id: "bind_fixture.route.1",
        bindingId: "bind_fixture",
        match: { hosts: ["api.acme.example"], pathPrefixes: ["/mcp"] },
        upstream: { baseUrl: "https://api.acme.example" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential,
      },
    ]);
  });

  it("names the MCP server after the target key unless the target names it", () => {
    const compileWithKey = (targetKey: string, config: Record<string, unknown>) => {
      const result = compilePlan({
        profileVersionId: "pver_1",
        bindings: [{ id: "bind_1", kind: "connector", connectionId: "conn_1", config: {} }],
        connections: [
          { id: "conn_1", targetId: "tgt_1", methodId: "api-key", status: "active", config: {} },
        ],
        targets: [{ id: "tgt_1", targetKey, variantId: "http-api", enabled: true, config }],
        registry: createRegistry([httpApiDefinition]),
      });
      if (!result.ok) throw new Error(JSON.stringify(result.errors));
      return result.plan.mcpServers.map((server) => server.name);
    };
    const config = {
      baseUrl: "https://api.acme.example",
      mcpServerUrl: "https://mcp.acme.example/mcp",
    };
    expect(compileWithKey("Acme Orders API", config)).toEqual(["acme-orders-api"]);
    expect(compileWithKey("acme_internal.v2", config)).toEqual(["acme_internal-v2"]);
    expect(compileWithKey("***", config)).toEqual(["http-api"]);
    expect(compileWithKey("Acme Orders API", { ...config, mcpServerName: "orders" })).toEqual([
      "orders",
    ]);
  });
});

describe("http-api validateBinding", () => {
  const target = {
    baseUrl: "https://api.acme.example/v2",
    allowedMethods: ["GET", "POST"],
    pathPrefixes: ["/v2/orders"],
  };

  it("refuses prefixes outside the target's, on segment boundaries", () => {
    expect(
      issuesOf({ target, binding: { pathPrefixes: ["/v2/orders/1", "/v2/ordersx", "/v2"] } }),
    ).toEqual([
      { code: "http-api.path_outside_target", field: "pathPrefixes.1" },
      { code: "http-api.path_outside_target", field: "pathPrefixes.2" },
    ]);
  });

  it("refuses methods the target does not allow, and allows any method when the target names none", () => {
    expect(issuesOf({ target, binding: { methods: ["GET", "PUT", "DELETE"] } })).toEqual([
      { code: "http-api.method_not_allowed", field: "methods.1" },
      { code: "http-api.method_not_allowed", field: "methods.2" },
    ]);
    expect(
      routesOf({ target: { baseUrl: target.baseUrl }, binding: { methods: ["DELETE"] } })[0]?.match
        .methods,
    ).toEqual(["DELETE"]);
  });

  it("refuses a client-credentials connection when the target has no token endpoint", () => {
    expect(
      issuesOf({
        target,
        methodId: "client-credentials",
        connectionConfig: { clientId: "acme-client" },
      }),
    ).toEqual([{ code: "http-api.oauth2_not_configured", field: "" }]);
  });

  it("refuses an MCP route that overlaps the API route on the same host", () => {
    expect(
      issuesOf({
        target: {
          baseUrl: "https://api.acme.example",
          mcpServerUrl: "https://api.acme.example/mcp",
        },
      }),
    ).toEqual([{ code: "http-api.mcp_route_overlaps_api", field: "" }]);
    expect(
      issuesOf({
        target: {
          baseUrl: "https://api.acme.example/mcp/v1",
          mcpServerUrl: "https://api.acme.example/mcp",
        },
      }),
    ).toEqual([{ code: "http-api.mcp_route_overlaps_api", field: "" }]);
  });

  it("accepts an MCP server on the API host when the binding narrows the API away from it", () => {
    const routes = routesOf({
      target: { baseUrl: "https://api.acme.example", mcpServerUrl: "https://api.acme.example/mcp" },
      binding: { pathPrefixes: ["/v2"] },
    });
    expect(routes.map((route) => route.match)).toEqual([
      { hosts: ["api.acme.example"], pathPrefixes: ["/v2"] },
      { hosts: ["api.acme.example"], pathPrefixes: ["/mcp"] },
    ]);
  });

  it("refuses a tool allow-list when the target has no MCP server", () => {
    expect(issuesOf({ target, binding: { mcpToolAllowlist: ["list_orders"] } })).toEqual([
      { code: "http-api.mcp_not_configured", field: "mcpToolAllowlist" },
    ]);
  });
});

import { describe, expect, it } from "vitest";
import type { ConnectionInput, TargetInput } from "./compiler/check-binding";
import { compilePlanOrThrow } from "./compiler/compile-plan";
import { diffPlans } from "./plan-diff";
import { createRegistry } from "./registry";
import { restFixtureDefinition, tomlAgentFixtureDefinition } from "./testing/fixture-definitions";

const registry = createRegistry([restFixtureDefinition, tomlAgentFixtureDefinition]);
const targets: TargetInput[] = [
  {
    id: "tgt_api",
    targetKey: "api",
    variantId: "rest-fixture",
    enabled: true,
    config: { baseUrl: "https://api.example.com" },
  },
  { id: "tgt_llm", targetKey: "llm", variantId: "toml-agent-fixture", enabled: true, config: {} },
];
const connections: ConnectionInput[] = [
  { id: "conn_api", targetId: "tgt_api", methodId: "api-key", status: "active", config: {} },
  { id: "conn_api2", targetId: "tgt_api", methodId: "api-key", status: "active", config: {} },
  { id: "conn_llm", targetId: "tgt_llm", methodId: "api-key", status: "active", config: {} },
];

function plan(api: { connectionId: string; config: unknown }, model = "m-1") {
  return compilePlanOrThrow({
    profileVersionId: "pver",
    registry,
    targets,
    connections,
    bindings: [
      { id: "bind_api", kind: "connector", ...api },
      { id: "bind_llm", kind: "agent", connectionId: "conn_llm", config: { model } },
    ],
  }).plan;
}

describe("diffPlans", () => {
  it("finds no change between a plan and itself", () => {
    const a = plan({ connectionId: "conn_api", config: { pathPrefixes: ["/v1"] } });
    expect(diffPlans(a, a).identical).toBe(true);
  });

  it("reports reachable paths added and removed, with the connection used", () => {
    const a = plan({ connectionId: "conn_api", config: { pathPrefixes: ["/v1"] } });
    const b = plan({
      connectionId: "conn_api",
      config: { pathPrefixes: ["/v1", "/v2"], methods: ["GET"] },
    });
    const diff = diffPlans(a, b);
    expect(diff.identical).toBe(false);
    expect(diff.capabilities.added).toEqual([
      {
        host: "api.example.com",
        methods: ["GET"],
        pathPrefix: "/v1",
        connectionId: "conn_api",
        auth: "bearer",
      },
      {
        host: "api.example.com",
        methods: ["GET"],
        pathPrefix: "/v2",
        connectionId: "conn_api",
        auth: "bearer",
      },
    ]);
    expect(diff.capabilities.removed).toEqual([
      {
        host: "api.example.com",
        methods: "any",
        pathPrefix: "/v1",
        connectionId: "conn_api",
        auth: "bearer",
      },
    ]);
  });

  it("reports a change to the queries a route refuses, and none for a reordering", () => {
    const a = plan({ connectionId: "conn_api", config: { pathPrefixes: ["/v1"] } });
    const refusing = (exclusions: { name: string; values: string[] }[]) => ({
      ...a,
      routes: a.routes.map((r) =>
        r.match.hosts.includes("api.example.com")
          ? { ...r, match: { ...r.match, excludeQuery: exclusions } }
          : r,
      ),
    });
    const push = refusing([{ name: "service", values: ["git-receive-pack"] }]);
    const capability = {
      host: "api.example.com",
      methods: "any",
      pathPrefix: "/v1",
      connectionId: "conn_api",
      auth: "bearer",
    };

    const narrowed = diffPlans(a, push);
    expect(narrowed.identical).toBe(false);
    expect(narrowed.capabilities).toEqual({
      added: [{ ...capability, excludeQuery: [{ name: "service", values: ["git-receive-pack"] }] }],
      removed: [capability],
    });
    expect(diffPlans(push, a).capabilities.added).toEqual([capability]);

    const wider = refusing([
      { name: "service", values: ["git-receive-pack"] },
      { name: "op", values: ["delete"] },
    ]);
    expect(diffPlans(push, wider).identical).toBe(false);
    const reordered = refusing([
      { name: "op", values: ["DELETE"] },
      { name: "service", values: ["git-receive-pack"] },
    ]);
    expect(diffPlans(wider, reordered).identical).toBe(true);
  });

  it("treats a change of connection as a capability change", () => {
    const a = plan({ connectionId: "conn_api", config: {} });
    const b = plan({ connectionId: "conn_api2", config: {} });
    const diff = diffPlans(a, b);
    expect(diff.capabilities.added.map((c) => c.connectionId)).toEqual(["conn_api2"]);
    expect(diff.capabilities.removed.map((c) => c.connectionId)).toEqual(["conn_api"]);
  });

  it("reports MCP servers, files and env by name", () => {
    const a = plan({ connectionId: "conn_api", config: { env: { A: "1", B: "1" } } });
    const b = plan(
      { connectionId: "conn_api", config: { mcpServerName: "api", env: { B: "2", C: "1" } } },
      "m-2",
    );
    const diff = diffPlans(a, b);
    expect(diff.capabilities.added).toEqual([]);
    expect(diff.mcpServers).toEqual({ added: ["api"], removed: [], changed: [] });
    expect(diff.files).toEqual({
      added: [],
      removed: [],
      changed: ["home/.toml-agent/config.toml"],
    });
    expect(diff.env).toEqual({ added: ["C"], removed: ["A"], changed: ["B"] });
  });
});

import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { createRegistry } from "../registry";
import {
  jsonAgentFixtureDefinition,
  restFixtureDefinition,
  tomlAgentFixtureDefinition,
} from "../testing/fixture-definitions";
import type { BindingInput, ConnectionInput, TargetInput } from "./check-binding";
import { PlanCompileError } from "./compile-error";
import { type CompileInput, compilePlan, compilePlanOrThrow } from "./compile-plan";

const registry = createRegistry([
  restFixtureDefinition,
  tomlAgentFixtureDefinition,
  jsonAgentFixtureDefinition,
]);

function target(id: string, variantId: string, config: unknown = {}, enabled = true): TargetInput {
  return { id, targetKey: id, variantId, enabled, config };
}
function connection(
  id: string,
  targetId: string,
  status: ConnectionInput["status"] = "active",
): ConnectionInput {
  return { id, targetId, methodId: "api-key", status, config: {} };
}
function binding(
  id: string,
  connectionId: string,
  kind: string,
  config: unknown = {},
): BindingInput {
  return { id, kind, connectionId, config };
}

function input(overrides: Partial<CompileInput>): CompileInput {
  return {
    profileVersionId: "pver_1",
    bindings: [],
    connections: [],
    targets: [],
    registry,
    ...overrides,
  };
}

const twoApis = input({
  targets: [
    target("tgt_a", "rest-fixture", { baseUrl: "https://a.example.com/v1" }),
    target("tgt_b", "rest-fixture", { baseUrl: "https://B.example.com:443" }),
  ],
  connections: [connection("conn_a", "tgt_a"), connection("conn_b", "tgt_b")],
  bindings: [binding("bind_b", "conn_b", "connector"), binding("bind_a", "conn_a", "connector")],
});

describe("compilePlan", () => {
  it("assigns stable ids, sorts by id and normalizes route hosts", () => {
    const { plan } = compilePlanOrThrow(twoApis);
    expect(plan.routes).toEqual([
      {
        id: "bind_a.route.0",
        bindingId: "bind_a",
        match: { hosts: ["a.example.com"], pathPrefixes: ["/v1"] },
        upstream: { baseUrl: "https://a.example.com" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { connectionId: "conn_a", secretType: "api_key" },
      },
      {
        id: "bind_b.route.0",
        bindingId: "bind_b",
        match: { hosts: ["b.example.com"], pathPrefixes: ["/"] },
        upstream: { baseUrl: "https://b.example.com" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { connectionId: "conn_b", secretType: "api_key" },
      },
    ]);
  });

  it("gives the same digest for the same input and a different one when anything changes", () => {
    const a = compilePlanOrThrow(twoApis);
    const b = compilePlanOrThrow({ ...twoApis, bindings: [...twoApis.bindings].reverse() });
    expect(b.digest).toBe(a.digest);
    const c = compilePlanOrThrow({ ...twoApis, profileVersionId: "pver_2" });
    expect(c.digest).not.toBe(a.digest);
  });

  it("rejects overlapping routes across bindings with route_conflict naming both", () => {
    const result = compilePlan(
      input({
        targets: [
          target("tgt_a", "rest-fixture", { baseUrl: "https://api.example.com/v1" }),
          target("tgt_b", "rest-fixture", { baseUrl: "https://api.example.com" }),
        ],
        connections: [connection("conn_a", "tgt_a"), connection("conn_b", "tgt_b")],
        bindings: [
          binding("bind_a", "conn_a", "connector"),
          binding("bind_b", "conn_b", "connector"),
        ],
      }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({
      code: "route_conflict",
      category: "conflict",
      bindingIds: ["bind_a", "bind_b"],
    });
    expect(result.errors[0]?.message).toContain("bind_a.route.0");
    expect(result.errors[0]?.message).toContain("bind_b.route.0");
  });

  it("accepts routes on one host that differ at a segment boundary or in methods", () => {
    const result = compilePlan(
      input({
        targets: [target("tgt", "rest-fixture", { baseUrl: "https://api.example.com" })],
        connections: [
          connection("conn_a", "tgt"),
          connection("conn_b", "tgt"),
          connection("conn_c", "tgt"),
        ],
        bindings: [
          binding("bind_a", "conn_a", "connector", { pathPrefixes: ["/v1"] }),
          binding("bind_b", "conn_b", "connector", { pathPrefixes: ["/v10"] }),
          binding("bind_c", "conn_c", "connector", { pathPrefixes: ["/v1/x"], methods: ["POST"] }),
        ],
      }),
    );
    // bind_c's /v1/x lies under bind_a's /v1 for every method, so it conflicts; /v10 does not.
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.bindingIds)).toEqual([["bind_a", "bind_c"]]);
  });

  it("reports reference errors with stable codes, separate from shape errors", () => {
    const result = compilePlan(
      input({
        targets: [
          target("tgt_off", "rest-fixture", {}, false),
          target("tgt_on", "rest-fixture", {}),
          target("tgt_bad", "rest-fixture", { baseUrl: "not a url" }),
        ],
        connections: [
          connection("conn_off", "tgt_off"),
          connection("conn_err", "tgt_on", "error"),
          connection("conn_ok", "tgt_on"),
          connection("conn_bad", "tgt_bad"),
          connection("conn_orphan", "tgt_missing"),
        ],
        bindings: [
          binding("b1", "conn_off", "connector"),
          binding("b2", "conn_err", "connector"),
          binding("b3", "conn_ok", "agent"),
          binding("b4", "conn_missing", "connector"),
          binding("b5", "conn_bad", "connector"),
          binding("b6", "conn_ok", "connector", { methods: "GET" }),
          binding("b7", "conn_ok", "connector", { pathPrefixes: ["v1", "/ok", "v2"] }),
          binding("b8", "conn_orphan", "connector"),
        ],
      }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => [e.bindingId, e.code, e.category])).toEqual([
      ["b1", "target_disabled", "reference"],
      ["b2", "connection_not_active", "reference"],
      ["b3", "kind_mismatch", "reference"],
      ["b4", "connection_not_found", "reference"],
      ["b5", "invalid_target_config", "shape"],
      ["b6", "invalid_binding_config", "shape"],
      ["b7", "binding_validation_failed", "shape"],
      ["b8", "target_not_found", "reference"],
    ]);
    expect(result.errors[4]?.issues?.[0]?.field).toBe("baseUrl");
    expect(result.errors[5]?.issues?.[0]?.field).toBe("methods");
    expect(result.errors[6]?.issues).toEqual([
      {
        code: "rest.invalid_prefix",
        field: "pathPrefixes.0",
        message: "path prefixes start with /",
      },
      {
        code: "rest.invalid_prefix",
        field: "pathPrefixes.2",
        message: "path prefixes start with /",
      },
    ]);
  });

  it("reports an invalid route produced by a definition as invalid_compile_output", () => {
    const result = compilePlan(
      input({
        targets: [target("tgt", "rest-fixture", {})],
        connections: [connection("conn", "tgt")],
        bindings: [binding("bind", "conn", "connector", { pathPrefixes: ["/v1/"] })],
      }),
    );
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]?.code).toBe("invalid_compile_output");
  });

  it("refuses a repeated binding id", () => {
    const result = compilePlan({
      ...twoApis,
      bindings: [...twoApis.bindings, binding("bind_a", "conn_a", "connector")],
    });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((e) => e.code)).toEqual(["duplicate_binding"]);
  });

  it("writes every MCP server of the profile into each agent's config file", () => {
    const { plan } = compilePlanOrThrow(
      input({
        targets: [
          target("tgt_llm", "toml-agent-fixture"),
          target("tgt_llm2", "json-agent-fixture"),
          target("tgt_tools", "rest-fixture", { baseUrl: "https://tools.example.com/api" }),
          target("tgt_docs", "rest-fixture", { baseUrl: "https://docs.example.com" }),
        ],
        connections: [
          connection("conn_llm", "tgt_llm"),
          connection("conn_llm2", "tgt_llm2"),
          connection("conn_tools", "tgt_tools"),
          connection("conn_docs", "tgt_docs"),
        ],
        bindings: [
          binding("bind_agent", "conn_llm", "agent", { model: "m-1" }),
          binding("bind_agent2", "conn_llm2", "agent"),
          binding("bind_tools", "conn_tools", "connector", { mcpServerName: "tools" }),
          binding("bind_docs", "conn_docs", "connector", {
            mcpServerName: "docs",
            pathPrefixes: ["/"],
          }),
        ],
      }),
    );
    expect(plan.mcpServers.map((s) => [s.name, s.bindingId])).toEqual([
      ["docs", "bind_docs"],
      ["tools", "bind_tools"],
    ]);
    const toml = plan.files.find((f) => f.path === ".toml-agent/config.toml");
    expect(toml?.root).toBe("home");
    expect(parseToml(toml?.content ?? "")).toEqual({
      base_url: "https://llm.example.com/v1",
      model: "m-1",
      mcp_servers: {
        docs: { url: "https://docs.example.com/mcp" },
        tools: { url: "https://tools.example.com/mcp" },
      },
    });
    const json = plan.files.find((f) => f.path === ".mcp.json");
    expect(JSON.parse(json?.content ?? "")).toEqual({
      mcpServers: {
        docs: { type: "http", url: "https://docs.example.com/mcp" },
        tools: { type: "http", url: "https://tools.example.com/mcp" },
      },
    });
    expect(json?.content.endsWith("\n")).toBe(true);
    expect(plan.env).toEqual([
      { name: "TOML_AGENT_KEY", value: "placeholder-not-a-secret", bindingId: "bind_agent" },
    ]);
    expect(plan.agentRuntimes.map((r) => r.id)).toEqual(["bind_agent.runtime.toml-agent"]);
  });

  it("rejects two MCP servers with one name, two files at one path and clashing env", () => {
    const base = {
      targets: [
        target("tgt_a", "rest-fixture", { baseUrl: "https://a.example.com" }),
        target("tgt_b", "rest-fixture", { baseUrl: "https://b.example.com" }),
      ],
      connections: [connection("conn_a", "tgt_a"), connection("conn_b", "tgt_b")],
    };
    const codes = (a: unknown, b: unknown) => {
      const result = compilePlan(
        input({
          ...base,
          bindings: [
            binding("bind_a", "conn_a", "connector", a),
            binding("bind_b", "conn_b", "connector", b),
          ],
        }),
      );
      return result.ok ? [] : result.errors.map((e) => [e.code, ...e.bindingIds]);
    };
    expect(codes({ mcpServerName: "x" }, { mcpServerName: "x" })).toEqual([
      ["mcp_conflict", "bind_a", "bind_b"],
    ]);
    expect(
      codes({ file: { path: "a.txt", text: "1" } }, { file: { path: "a.txt", text: "2" } }),
    ).toEqual([["artifact_conflict", "bind_a", "bind_b"]]);
    expect(codes({ env: { X: "1" } }, { env: { X: "2" } })).toEqual([
      ["env_conflict", "bind_a", "bind_b"],
    ]);
    expect(codes({ env: { X: "1" } }, { env: { X: "1" } })).toEqual([]);
  });

  it("rejects two bindings configuring the same runtime client", () => {
    const result = compilePlan(
      input({
        targets: [
          target("tgt_a", "toml-agent-fixture"),
          target("tgt_b", "toml-agent-fixture", { baseUrl: "https://other.example.com" }),
        ],
        connections: [connection("conn_a", "tgt_a"), connection("conn_b", "tgt_b")],
        bindings: [
          binding("bind_a", "conn_a", "agent", { model: "m" }),
          binding("bind_b", "conn_b", "agent", { model: "m" }),
        ],
      }),
    );
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((e) => e.code)).toEqual(["runtime_client_conflict"]);
  });

  it("includes a per-profile egress policy, normalised", () => {
    const { plan } = compilePlanOrThrow({
      ...twoApis,
      egressPolicy: {
        default: "deny",
        allowHosts: ["z.example.com", "a.example.com", "z.example.com"],
      },
    });
    expect(plan.egressPolicy).toEqual({
      default: "deny",
      allowHosts: ["a.example.com", "z.example.com"],
    });
  });

  it("throws PlanCompileError with every error from compilePlanOrThrow", () => {
    expect(() =>
      compilePlanOrThrow(input({ bindings: [binding("b", "missing", "connector")] })),
    ).toThrowError(PlanCompileError);
  });
});

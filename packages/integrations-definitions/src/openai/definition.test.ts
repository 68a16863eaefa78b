import {
  type CompileResult,
  compilePlan,
  createRegistry,
  defineIntegration,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
  FIXTURE_IDS,
  fixtureInputs,
} from "../testing/definition-contract";
import { openaiDefinition } from "./definition";

const API_KEY = "sk-proj-keyway-test-0123456789abcdefghijklmnopqrstuvwxyz";

const fixture: DefinitionFixture = {
  target: { config: {}, secrets: {} },
  connection: { methodId: "api-key", secretValues: [API_KEY] },
  binding: {
    config: {
      model: "gpt-6.2-sol",
      reasoningEffort: "high",
      instructions: "Prefer small commits.",
    },
  },
  invalidBinding: {
    config: { model: "gpt-4-unknown", reasoningEffort: "high" },
    issues: [{ code: "openai.unknown_model", field: "model" }],
  },
};

describeDefinitionContract(openaiDefinition, fixture);

function planOf(result: CompileResult) {
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan;
}

function issuesOf(result: CompileResult) {
  expect(result.ok).toBe(false);
  if (result.ok) return [];
  return result.errors.flatMap((e) =>
    (e.issues ?? []).map((i) => ({ error: e.code, code: i.code, field: i.field })),
  );
}

const binding = FIXTURE_IDS.binding;

describe("openai compile output", () => {
  it("compiles the default target into one bearer route, a Codex config, a placeholder env and the agent", () => {
    const plan = planOf(compileSingle(openaiDefinition, fixture));

    expect(plan.routes).toEqual([
      {
        id: `${binding}.route.0`,
        bindingId: binding,
        match: { hosts: ["api.openai.com"], pathPrefixes: ["/v1"] },
        upstream: { baseUrl: "https://api.openai.com" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { connectionId: FIXTURE_IDS.connection, secretType: "api_key" },
      },
    ]);

    expect(plan.files.map(({ content: _content, ...file }) => file)).toEqual([
      {
        id: `${binding}.file.config`,
        bindingId: binding,
        clientId: "codex-cli",
        root: "home",
        path: ".codex/config.toml",
        mode: 0o644,
      },
    ]);
    const content = plan.files[0]?.content ?? "";
    expect(parseToml(content)).toEqual({
      check_for_update_on_startup: false,
      model: "gpt-6.2-sol",
      model_provider: "keyway-openai",
      model_reasoning_effort: "high",
      developer_instructions: "Prefer small commits.",
      model_providers: {
        "keyway-openai": {
          name: "OpenAI (via Keyway)",
          base_url: "https://api.openai.com/v1",
          wire_api: "responses",
          env_key: "KEYWAY_OPENAI_API_KEY",
        },
      },
    });
    expect(content).toBe(
      [
        "check_for_update_on_startup = false",
        'developer_instructions = "Prefer small commits."',
        'model = "gpt-6.2-sol"',
        'model_provider = "keyway-openai"',
        'model_reasoning_effort = "high"',
        "",
        "[model_providers.keyway-openai]",
        'base_url = "https://api.openai.com/v1"',
        'env_key = "KEYWAY_OPENAI_API_KEY"',
        'name = "OpenAI (via Keyway)"',
        'wire_api = "responses"',
        "",
      ].join("\n"),
    );

    expect(plan.env).toEqual([
      {
        name: "KEYWAY_OPENAI_API_KEY",
        value: "keyway-placeholder-openai-api-key",
        bindingId: binding,
      },
    ]);
    expect(plan.agentRuntimes).toEqual([
      {
        id: `${binding}.runtime.codex-cli`,
        bindingId: binding,
        clientId: "codex-cli",
        displayName: "Codex",
        command: ["codex"],
      },
    ]);
    expect(plan.processes).toEqual([]);
    expect(plan.mcpServers).toEqual([]);
    expect(plan.workspaceSources).toEqual([]);
  });

  it("leaves effort and instructions out of the Codex config when the binding has none", () => {
    const plan = planOf(
      compileSingle(openaiDefinition, fixture, { bindingConfig: { model: "gpt-5.5" } }),
    );
    expect(parseToml(plan.files[0]?.content ?? "")).toEqual({
      check_for_update_on_startup: false,
      model: "gpt-5.5",
      model_provider: "keyway-openai",
      model_providers: {
        "keyway-openai": {
          name: "OpenAI (via Keyway)",
          base_url: "https://api.openai.com/v1",
          wire_api: "responses",
          env_key: "KEYWAY_OPENAI_API_KEY",
        },
      },
    });
  });

  it("derives host, port, path prefix and base_url from a custom API base URL", () => {
    const custom: DefinitionFixture = {
      ...fixture,
      target: {
        config: {
          apiBaseUrl: "https://LLM.internal.example:8443/openai/v1/",
          models: { "corp-codex": { reasoningEfforts: ["low"] } },
        },
        secrets: {},
      },
    };
    const plan = planOf(
      compileSingle(openaiDefinition, custom, {
        bindingConfig: { model: "corp-codex", reasoningEffort: "low" },
      }),
    );
    expect(plan.routes.map((r) => ({ match: r.match, upstream: r.upstream }))).toEqual([
      {
        match: { hosts: ["llm.internal.example:8443"], pathPrefixes: ["/openai/v1"] },
        upstream: { baseUrl: "https://llm.internal.example:8443" },
      },
    ]);
    const config = parseToml(plan.files[0]?.content ?? "");
    expect(config.model_providers).toEqual({
      "keyway-openai": {
        name: "OpenAI (via Keyway)",
        base_url: "https://llm.internal.example:8443/openai/v1",
        wire_api: "responses",
        env_key: "KEYWAY_OPENAI_API_KEY",
      },
    });
  });
});

describe("openai binding validation", () => {
  it("refuses a model that is not in the target's table", () => {
    expect(
      issuesOf(compileSingle(openaiDefinition, fixture, { bindingConfig: { model: "gpt-4o" } })),
    ).toEqual([
      { error: "binding_validation_failed", code: "openai.unknown_model", field: "model" },
    ]);
  });

  it("does not mistake Object.prototype members for models", () => {
    for (const model of ["constructor", "toString", "hasOwnProperty"]) {
      expect(
        issuesOf(compileSingle(openaiDefinition, fixture, { bindingConfig: { model } })),
      ).toEqual([
        { error: "binding_validation_failed", code: "openai.unknown_model", field: "model" },
      ]);
    }
  });

  it("refuses a reasoning effort the model does not support", () => {
    const result = compileSingle(openaiDefinition, fixture, {
      bindingConfig: { model: "gpt-5.5", reasoningEffort: "max" },
    });
    expect(issuesOf(result)).toEqual([
      {
        error: "binding_validation_failed",
        code: "openai.unsupported_reasoning_effort",
        field: "reasoningEffort",
      },
    ]);
  });

  it("accepts every effort the default table lists for a model", () => {
    for (const reasoningEffort of ["low", "medium", "high", "xhigh", "max", "ultra"]) {
      const result = compileSingle(openaiDefinition, fixture, {
        bindingConfig: { model: "gpt-6.2-astra", reasoningEffort },
      });
      expect(result.ok).toBe(true);
    }
  });

  it("reports an effort outside Codex's vocabulary as a shape error", () => {
    const result = compileSingle(openaiDefinition, fixture, {
      bindingConfig: { model: "gpt-6.2-sol", reasoningEffort: "extreme" },
    });
    expect(result.ok ? [] : result.errors.map((e) => e.code)).toEqual(["invalid_binding_config"]);
  });

  it("refuses target configs with unknown fields, non-http URLs or URLs with a query", () => {
    for (const config of [
      { apiBase: "https://api.openai.com/v1" },
      { apiBaseUrl: "ftp://api.openai.com/v1" },
      { apiBaseUrl: "https://api.openai.com/v1?key=x" },
      { models: {} },
    ]) {
      const result = compileSingle(openaiDefinition, {
        ...fixture,
        target: { config, secrets: {} },
      });
      expect(result.ok ? [] : result.errors.map((e) => e.code)).toEqual(["invalid_target_config"]);
    }
  });

  it("renders its forms with the declared hints", () => {
    expect(() =>
      toJsonSchemaForm(openaiDefinition.targetConfigSchema, {
        hints: openaiDefinition.targetConfigForm ?? {},
      }),
    ).not.toThrow();
    expect(() =>
      toJsonSchemaForm(openaiDefinition.bindingConfigSchema, {
        hints: openaiDefinition.bindingForm ?? {},
      }),
    ).not.toThrow();
  });
});

/** A connector exposing one remote and one local MCP server, to see them land in Codex's file. */
const toolsConnector = defineIntegration({
  familyId: "tools",
  variantId: "tools",
  kind: "connector",
  displayName: "Tools",
  description: "Test connector exposing MCP servers",
  logoKey: "tools",
  docsUrl: "https://tools.example/docs",
  targetConfigSchema: z.strictObject({}),
  targetSecretSchema: z.strictObject({}),
  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],
  bindingConfigSchema: z.strictObject({}),
  compileBinding: () => ({
    routes: [
      {
        match: { hosts: ["mcp.tools.example"], pathPrefixes: ["/mcp"] },
        upstream: { baseUrl: "https://mcp.tools.example" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { secretType: "api_key" },
      },
    ],
    mcpServers: [
      {
        name: "tracker",
        transport: "streamable-http",
        url: "https://mcp.tools.example/mcp",
        headers: { "x-tools-client": "keyway" },
      },
      {
        name: "files",
        transport: "stdio",
        command: "npx",
        args: ["-y", "@tools/files-mcp"],
        env: { FILES_ROOT: "/workspace" },
      },
    ],
  }),
});

describe("openai MCP config", () => {
  it("writes every MCP server of the profile into config.toml in Codex's shape", () => {
    const agent = fixtureInputs(openaiDefinition, fixture);
    const tools = fixtureInputs(
      toolsConnector,
      {
        target: { config: {}, secrets: {} },
        connection: { methodId: "api-key", secretValues: [] },
        binding: { config: {} },
      },
      {},
      { target: "tgt_tools", connection: "conn_tools", binding: "bind_tools" },
    );
    const plan = planOf(
      compilePlan({
        profileVersionId: "pver_mcp",
        bindings: [agent.binding, tools.binding],
        connections: [agent.connection, tools.connection],
        targets: [agent.target, tools.target],
        registry: createRegistry([openaiDefinition, toolsConnector]),
      }),
    );

    const config = parseToml(
      plan.files.find((f) => f.path === ".codex/config.toml")?.content ?? "",
    );
    expect(config.mcp_servers).toEqual({
      files: {
        command: "npx",
        args: ["-y", "@tools/files-mcp"],
        env: { FILES_ROOT: "/workspace" },
      },
      tracker: {
        url: "https://mcp.tools.example/mcp",
        http_headers: { "x-tools-client": "keyway" },
      },
    });
    // The provider config is untouched by the MCP pass.
    expect(config.model_provider).toBe("keyway-openai");
    expect(plan.mcpServers.map((s) => `${s.bindingId}:${s.name}`)).toEqual([
      "bind_tools:files",
      "bind_tools:tracker",
    ]);
  });
});

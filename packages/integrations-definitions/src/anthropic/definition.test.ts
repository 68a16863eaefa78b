import {
  type CompileResult,
  compilePlan,
  createRegistry,
  defineIntegration,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
  FIXTURE_IDS,
  fixtureInputs,
} from "../testing/definition-contract";
import { anthropicDefinition } from "./definition";

const API_KEY = "sk-ant-api03-keyway-test-0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

const fixture: DefinitionFixture = {
  target: { config: {}, secrets: {} },
  connection: { methodId: "api-key", secretValues: [API_KEY] },
  binding: {
    config: { model: "claude-sonnet-5-5", instructions: "Run the tests before committing." },
  },
  invalidBinding: {
    config: { model: "claude-2.1" },
    issues: [{ code: "anthropic.unknown_model", field: "model" }],
  },
};

describeDefinitionContract(anthropicDefinition, fixture);

const binding = FIXTURE_IDS.binding;

function planOf(result: CompileResult) {
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan;
}

function fileContent(plan: ReturnType<typeof planOf>, path: string): string {
  const file = plan.files.find((f) => f.path === path);
  if (!file) throw new Error(`no file ${path}`);
  return file.content;
}

describe("anthropic compile output", () => {
  it("compiles the default target into an x-api-key route, Claude Code files, env and the agent", () => {
    const plan = planOf(compileSingle(anthropicDefinition, fixture));

    expect(plan.routes).toEqual([
      {
        id: `${binding}.route.0`,
        bindingId: binding,
        match: { hosts: ["api.anthropic.com"], pathPrefixes: ["/"] },
        upstream: { baseUrl: "https://api.anthropic.com" },
        auth: { type: "header", name: "x-api-key" },
        credential: { connectionId: FIXTURE_IDS.connection, secretType: "api_key" },
      },
    ]);

    expect(plan.files.map(({ content: _content, ...file }) => file)).toEqual([
      {
        id: `${binding}.file.instructions`,
        bindingId: binding,
        clientId: "claude-code",
        root: "home",
        path: ".claude/CLAUDE.md",
        mode: 0o644,
      },
      {
        id: `${binding}.file.mcp`,
        bindingId: binding,
        clientId: "claude-code",
        root: "workspace",
        path: ".mcp.json",
        mode: 0o644,
      },
      {
        id: `${binding}.file.settings`,
        bindingId: binding,
        clientId: "claude-code",
        root: "home",
        path: ".claude/settings.json",
        mode: 0o644,
      },
      {
        id: `${binding}.file.state`,
        bindingId: binding,
        clientId: "claude-code",
        root: "home",
        path: ".claude.json",
        mode: 0o644,
      },
    ]);

    expect(fileContent(plan, ".claude/settings.json")).toBe(
      `${JSON.stringify(
        {
          enableAllProjectMcpServers: true,
          env: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1" },
          model: "claude-sonnet-5-5",
        },
        null,
        2,
      )}\n`,
    );
    // The approved entry is the placeholder's last 20 characters, as Claude Code records approvals.
    expect(JSON.parse(fileContent(plan, ".claude.json"))).toEqual({
      customApiKeyResponses: { approved: ["er-anthropic-api-key"], rejected: [] },
      hasCompletedOnboarding: true,
      projects: { "/": { hasTrustDialogAccepted: true } },
    });
    expect(JSON.parse(fileContent(plan, ".mcp.json"))).toEqual({ mcpServers: {} });
    expect(fileContent(plan, ".claude/CLAUDE.md")).toBe("Run the tests before committing.\n");

    expect(plan.env).toEqual([
      {
        name: "ANTHROPIC_API_KEY",
        value: "keyway-placeholder-anthropic-api-key",
        bindingId: binding,
      },
    ]);
    expect(plan.agentRuntimes).toEqual([
      {
        id: `${binding}.runtime.claude-code`,
        bindingId: binding,
        clientId: "claude-code",
        displayName: "Claude Code",
        command: ["claude"],
      },
    ]);
    expect(plan.processes).toEqual([]);
    expect(plan.mcpServers).toEqual([]);
  });

  it("pre-approves exactly the last 20 characters of the placeholder key it sets", () => {
    const plan = planOf(compileSingle(anthropicDefinition, fixture));
    const placeholder = plan.env.find((e) => e.name === "ANTHROPIC_API_KEY")?.value ?? "";
    const state: unknown = JSON.parse(fileContent(plan, ".claude.json"));
    expect(placeholder.length).toBeGreaterThan(20);
    expect(state).toMatchObject({ customApiKeyResponses: { approved: [placeholder.slice(-20)] } });
  });

  it("writes no CLAUDE.md without instructions", () => {
    const plan = planOf(
      compileSingle(anthropicDefinition, fixture, { bindingConfig: { model: "claude-haiku-5-5" } }),
    );
    expect(plan.files.map((f) => f.path)).toEqual([
      ".mcp.json",
      ".claude/settings.json",
      ".claude.json",
    ]);
  });

  it("points Claude Code at a non-default API base URL and routes its host and path", () => {
    const custom: DefinitionFixture = {
      ...fixture,
      target: {
        config: { apiBaseUrl: "https://LLM.corp.example/anthropic/", models: ["claude-opus-5-5"] },
        secrets: {},
      },
    };
    const plan = planOf(
      compileSingle(anthropicDefinition, custom, { bindingConfig: { model: "claude-opus-5-5" } }),
    );
    expect(plan.routes.map((r) => ({ match: r.match, upstream: r.upstream }))).toEqual([
      {
        match: { hosts: ["llm.corp.example"], pathPrefixes: ["/anthropic"] },
        upstream: { baseUrl: "https://llm.corp.example" },
      },
    ]);
    expect(plan.env).toEqual([
      {
        name: "ANTHROPIC_API_KEY",
        value: "keyway-placeholder-anthropic-api-key",
        bindingId: binding,
      },
      {
        name: "ANTHROPIC_BASE_URL",
        value: "https://llm.corp.example/anthropic",
        bindingId: binding,
      },
    ]);
  });

  it("treats the default URL spelled with a trailing slash as the default", () => {
    const slash: DefinitionFixture = {
      ...fixture,
      target: { config: { apiBaseUrl: "https://api.anthropic.com/" }, secrets: {} },
    };
    const plan = planOf(compileSingle(anthropicDefinition, slash));
    expect(plan.env.map((e) => e.name)).toEqual(["ANTHROPIC_API_KEY"]);
  });
});

describe("anthropic binding validation", () => {
  const issues = (result: CompileResult) =>
    result.ok
      ? []
      : result.errors.flatMap((e) =>
          (e.issues ?? []).map((i) => ({ error: e.code, code: i.code, field: i.field })),
        );

  it("refuses a model the target does not allow", () => {
    expect(
      issues(
        compileSingle(anthropicDefinition, fixture, {
          bindingConfig: { model: "claude-3-opus-20240229" },
        }),
      ),
    ).toEqual([
      { error: "binding_validation_failed", code: "anthropic.unknown_model", field: "model" },
    ]);
  });

  it("accepts an alias once the operator allows it", () => {
    const aliases: DefinitionFixture = {
      ...fixture,
      target: { config: { models: ["sonnet", "opus[1m]"] }, secrets: {} },
    };
    expect(
      compileSingle(anthropicDefinition, aliases, { bindingConfig: { model: "opus[1m]" } }).ok,
    ).toBe(true);
  });

  it("refuses target configs with unknown fields, an empty model list or a URL with a query", () => {
    for (const config of [
      { baseUrl: "https://api.anthropic.com" },
      { models: [] },
      { apiBaseUrl: "https://api.anthropic.com?x=1" },
    ]) {
      const result = compileSingle(anthropicDefinition, {
        ...fixture,
        target: { config, secrets: {} },
      });
      expect(result.ok ? [] : result.errors.map((e) => e.code)).toEqual(["invalid_target_config"]);
    }
  });

  it("renders its forms with the declared hints", () => {
    expect(() =>
      toJsonSchemaForm(anthropicDefinition.targetConfigSchema, {
        hints: anthropicDefinition.targetConfigForm ?? {},
      }),
    ).not.toThrow();
    expect(() =>
      toJsonSchemaForm(anthropicDefinition.bindingConfigSchema, {
        hints: anthropicDefinition.bindingForm ?? {},
      }),
    ).not.toThrow();
  });
});

/** A connector exposing one remote and one local MCP server, to see them land in `.mcp.json`. */
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

describe("anthropic MCP config", () => {
  it("writes every MCP server of the profile into .mcp.json in Claude Code's shape", () => {
    const agent = fixtureInputs(anthropicDefinition, fixture);
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
        registry: createRegistry([anthropicDefinition, toolsConnector]),
      }),
    );

    expect(JSON.parse(fileContent(plan, ".mcp.json"))).toEqual({
      mcpServers: {
        files: {
          type: "stdio",
          command: "npx",
          args: ["-y", "@tools/files-mcp"],
          env: { FILES_ROOT: "/workspace" },
        },
        tracker: {
          type: "http",
          url: "https://mcp.tools.example/mcp",
          headers: { "x-tools-client": "keyway" },
        },
      },
    });
    expect(plan.mcpServers.map((s) => `${s.bindingId}:${s.name}`)).toEqual([
      "bind_tools:files",
      "bind_tools:tracker",
    ]);
  });
});

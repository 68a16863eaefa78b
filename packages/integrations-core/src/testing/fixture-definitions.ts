import { z } from "zod";
import { defineIntegration } from "../definition";
import { splitBaseUrl } from "../target-url";

/**
 * Small definitions for core tests. They use only the public contract, so core can be tested
 * without the provider catalogue (which depends on core, not the other way round).
 */
export const restFixtureDefinition = defineIntegration({
  familyId: "rest",
  variantId: "rest-fixture",
  kind: "connector",
  displayName: "REST fixture",
  description: "A REST API for tests",
  logoKey: "rest",
  docsUrl: "https://example.com/docs",
  targetConfigSchema: z.strictObject({ baseUrl: z.url().default("https://api.example.com") }),
  targetSecretSchema: z.strictObject({ webhookSecret: z.string().optional() }),
  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],
  bindingConfigSchema: z.strictObject({
    pathPrefixes: z.array(z.string()).optional(),
    methods: z.array(z.string()).optional(),
    mcpServerName: z.string().optional(),
    env: z.record(z.string(), z.string()).optional(),
    file: z.strictObject({ path: z.string(), text: z.string() }).optional(),
  }),
  validateBinding({ binding }) {
    return (binding.config.pathPrefixes ?? [])
      .map((prefix, i) => ({ prefix, i }))
      .filter(({ prefix }) => !prefix.startsWith("/"))
      .map(({ i }) => ({
        code: "rest.invalid_prefix",
        field: `pathPrefixes.${i}`,
        message: "path prefixes start with /",
      }));
  },
  compileBinding({ target, binding }) {
    const base = splitBaseUrl(target.config.baseUrl);
    const { pathPrefixes, methods, mcpServerName, env, file } = binding.config;
    return {
      routes: [
        {
          match: {
            hosts: [base.host],
            ...(methods ? { methods } : {}),
            pathPrefixes: pathPrefixes ?? [base.pathPrefix],
          },
          upstream: { baseUrl: base.origin },
          auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
          credential: { secretType: "api_key" },
        },
      ],
      mcpServers: mcpServerName
        ? [{ name: mcpServerName, transport: "streamable-http", url: `${base.origin}/mcp` }]
        : [],
      runtimeClients:
        env || file
          ? [
              {
                clientId: `rest-client-${binding.id}`,
                env: env ?? {},
                files: file
                  ? [
                      {
                        fileId: "f",
                        root: "workspace",
                        path: file.path,
                        format: "text",
                        text: file.text,
                      },
                    ]
                  : [],
              },
            ]
          : [],
    };
  },
});

export const tomlAgentFixtureDefinition = defineIntegration({
  familyId: "toml-agent",
  variantId: "toml-agent-fixture",
  kind: "agent",
  displayName: "TOML agent fixture",
  description: "An agent whose client reads MCP servers from TOML",
  logoKey: "agent",
  docsUrl: "https://example.com/docs",
  targetConfigSchema: z.strictObject({ baseUrl: z.url().default("https://llm.example.com/v1") }),
  targetSecretSchema: z.strictObject({}),
  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],
  bindingConfigSchema: z.strictObject({ model: z.string() }),
  compileBinding({ target, binding }) {
    const base = splitBaseUrl(target.config.baseUrl);
    return {
      routes: [
        {
          match: { hosts: [base.host], pathPrefixes: [base.pathPrefix] },
          upstream: { baseUrl: base.origin },
          auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
          credential: { secretType: "api_key" },
        },
      ],
      runtimeClients: [
        {
          clientId: "toml-agent",
          env: { TOML_AGENT_KEY: "placeholder-not-a-secret" },
          files: [
            {
              fileId: "config",
              root: "home",
              path: ".toml-agent/config.toml",
              format: "toml",
              data: { model: binding.config.model, base_url: target.config.baseUrl },
            },
          ],
        },
      ],
      agentRuntimes: [
        { clientId: "toml-agent", displayName: "TOML agent", command: ["toml-agent"] },
      ],
    };
  },
  mcp: {
    mcpConfig: {
      clientId: "toml-agent",
      fileId: "config",
      format: "toml",
      path: ["mcp_servers"],
      renderServer: (server) =>
        server.transport === "streamable-http"
          ? { url: server.url }
          : { command: server.command, args: server.args, env: server.env },
    },
  },
});

export const jsonAgentFixtureDefinition = defineIntegration({
  familyId: "json-agent",
  variantId: "json-agent-fixture",
  kind: "agent",
  displayName: "JSON agent fixture",
  description: "An agent whose client reads MCP servers from JSON",
  logoKey: "agent",
  docsUrl: "https://example.com/docs",
  targetConfigSchema: z.strictObject({ baseUrl: z.url().default("https://llm2.example.com") }),
  targetSecretSchema: z.strictObject({}),
  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],
  bindingConfigSchema: z.strictObject({}),
  compileBinding({ target }) {
    const base = splitBaseUrl(target.config.baseUrl);
    return {
      routes: [
        {
          match: { hosts: [base.host] },
          upstream: { baseUrl: base.origin },
          auth: { type: "header", name: "x-api-key" },
          credential: { secretType: "api_key" },
        },
      ],
      runtimeClients: [
        {
          clientId: "json-agent",
          files: [
            { fileId: "mcp", root: "workspace", path: ".mcp.json", format: "json", data: {} },
          ],
        },
      ],
    };
  },
  mcp: {
    mcpConfig: {
      clientId: "json-agent",
      fileId: "mcp",
      format: "json",
      path: ["mcpServers"],
      renderServer: (server) =>
        server.transport === "streamable-http"
          ? { type: "http", url: server.url }
          : { type: "stdio", command: server.command, args: server.args, env: server.env },
    },
  },
});

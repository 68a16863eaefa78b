import type { BindingInput, ConnectionInput, TargetInput } from "@keyway/integrations-core";

/**
 * A realistic profile using the whole catalogue: two agents (Codex and Claude Code), GitHub,
 * Linear, Slack, Atlassian and a generic REST API with its own MCP server. Also lists every
 * secret value such a deployment would hold, so tests can prove none reaches the plan.
 */
export interface CatalogueProfile {
  targets: TargetInput[];
  connections: ConnectionInput[];
  bindings: BindingInput[];
  secretValues: string[];
}

export function catalogueProfile(): CatalogueProfile {
  const targetSecrets = {
    github: {
      appPrivateKeyPem: "-----BEGIN PRIVATE KEY-----fixture-gh",
      clientSecret: "gh-client-secret-5566",
      webhookSecret: "gh-webhook-secret-7788",
    },
    linear: {
      clientSecret: "linear-client-secret-3f9a",
      webhookSecret: "linear-webhook-secret-77c1",
    },
    slack: { clientSecret: "slack-client-secret-4e1d", signingSecret: "slack-signing-secret-90ab" },
    httpApi: { webhookSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
  };
  const connectionSecrets = [
    "sk-proj-fixture-openai-0001",
    "sk-ant-fixture-anthropic-0002",
    "github_pat_fixture_11AAAAAA0123456789",
    "lin_api_0123456789abcdef",
    "xoxb-fixture-bot-token",
    "atlassian-api-token-fixture-0003",
    "acme-api-key-fixture-0004",
  ];
  const target = (id: string, variantId: string, config: unknown): TargetInput => ({
    id,
    targetKey: variantId,
    variantId,
    enabled: true,
    config,
  });
  const connection = (
    id: string,
    targetId: string,
    methodId: string,
    extra: Partial<ConnectionInput> = {},
  ): ConnectionInput => ({ id, targetId, methodId, status: "active", config: {}, ...extra });

  return {
    targets: [
      target("tgt_openai", "openai", {}),
      target("tgt_anthropic", "anthropic", {}),
      target("tgt_github", "github-cloud", {}),
      target("tgt_linear", "linear", { clientId: "linear-client-id" }),
      target("tgt_slack", "slack", { clientId: "1234567890.0987654321" }),
      target("tgt_atlassian", "atlassian", {}),
      target("tgt_acme", "http-api", {
        baseUrl: "https://api.acme.example/v2",
        auth: { type: "header", name: "X-Api-Key" },
        mcpServerUrl: "https://mcp.acme.example/mcp",
        webhook: { scheme: "standard-webhooks" },
      }),
    ],
    connections: [
      connection("conn_openai", "tgt_openai", "api-key"),
      connection("conn_anthropic", "tgt_anthropic", "api-key"),
      connection("conn_github", "tgt_github", "personal-access-token"),
      connection("conn_linear", "tgt_linear", "api-key"),
      connection("conn_slack", "tgt_slack", "oauth2", { externalSubjectId: "T0123ABCD" }),
      connection("conn_atlassian", "tgt_atlassian", "api-token", {
        config: { email: "dev@acme.example" },
      }),
      connection("conn_acme", "tgt_acme", "api-key"),
    ],
    bindings: [
      {
        id: "bind_codex",
        kind: "agent",
        connectionId: "conn_openai",
        config: { model: "gpt-6.2-sol" },
      },
      {
        id: "bind_claude",
        kind: "agent",
        connectionId: "conn_anthropic",
        config: { model: "claude-sonnet-5-5" },
      },
      {
        id: "bind_github",
        kind: "git",
        connectionId: "conn_github",
        config: { repositories: ["octo-org/widgets", "octo-org/gears"] },
      },
      {
        id: "bind_linear",
        kind: "connector",
        connectionId: "conn_linear",
        config: { mcpToolAllowlist: ["list_issues"] },
      },
      { id: "bind_slack", kind: "connector", connectionId: "conn_slack", config: {} },
      { id: "bind_atlassian", kind: "connector", connectionId: "conn_atlassian", config: {} },
      { id: "bind_acme", kind: "connector", connectionId: "conn_acme", config: {} },
    ],
    secretValues: [
      ...Object.values(targetSecrets).flatMap((s) => Object.values(s)),
      ...connectionSecrets,
    ],
  };
}

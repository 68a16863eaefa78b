import { defineIntegration } from "@keyway/integrations-core";
import { z } from "zod";
import { anthropicBindingConfigSchema } from "./binding-config-schema";
import { claudeCodeMcpConfig } from "./claude-code-mcp-config";
import { compileAnthropicBinding } from "./compile-binding";
import { anthropicCredentialTest } from "./credential-test";
import { anthropicTargetConfigSchema } from "./target-config-schema";
import { validateAnthropicBinding } from "./validate-binding";

/**
 * Anthropic as an agent provider (SPEC §5): an API key connection injected as `x-api-key` by the
 * gateway, and a Claude Code runtime with settings, a pre-approved placeholder key and a project
 * `.mcp.json` holding every MCP server of the profile.
 */
export const anthropicDefinition = defineIntegration({
  familyId: "anthropic",
  variantId: "anthropic",
  kind: "agent",
  displayName: "Anthropic",
  description: "Claude models for Claude Code, with the API key injected by the Keyway gateway.",
  logoKey: "anthropic",
  docsUrl: "https://docs.anthropic.com/en/api/overview",

  targetConfigSchema: anthropicTargetConfigSchema,
  targetConfigForm: {
    apiBaseUrl: {
      label: "API base URL",
      help: "The Anthropic API root, without the /v1 version path.",
      widget: "url",
      order: 1,
    },
    models: {
      label: "Models",
      help: "Model ids or Claude Code aliases users may bind.",
      widget: "list",
      order: 2,
      advanced: true,
    },
  },
  targetSecretSchema: z.strictObject({}),

  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],

  bindingConfigSchema: anthropicBindingConfigSchema,
  bindingForm: {
    model: { label: "Model", widget: "select", order: 1 },
    instructions: {
      label: "Extra instructions",
      help: "Written to Claude Code's user memory (~/.claude/CLAUDE.md).",
      widget: "textarea",
      order: 2,
    },
  },

  validateBinding: validateAnthropicBinding,
  compileBinding: compileAnthropicBinding,
  mcp: { mcpConfig: claudeCodeMcpConfig },
  credentialTest: anthropicCredentialTest,
});

import { defineIntegration } from "@keyway/integrations-core";
import { z } from "zod";
import { openaiBindingConfigSchema } from "./binding-config-schema";
import { codexMcpConfig } from "./codex-mcp-config";
import { compileOpenaiBinding } from "./compile-binding";
import { openaiCredentialTest } from "./credential-test";
import { openaiTargetConfigSchema } from "./target-config-schema";
import { validateOpenaiBinding } from "./validate-binding";

/**
 * OpenAI as an agent provider (SPEC §5): an API key connection, one bearer route to the API host,
 * and a Codex CLI runtime whose `config.toml` points a Keyway-owned model provider at the
 * canonical API URL. The key itself only ever exists in the gateway.
 */
export const openaiDefinition = defineIntegration({
  familyId: "openai",
  variantId: "openai",
  kind: "agent",
  displayName: "OpenAI",
  description: "OpenAI models for the Codex CLI, with the API key injected by the Keyway gateway.",
  logoKey: "openai",
  docsUrl: "https://platform.openai.com/docs/api-reference",

  targetConfigSchema: openaiTargetConfigSchema,
  targetConfigForm: {
    apiBaseUrl: {
      label: "API base URL",
      help: "The OpenAI-compatible API root, including its version path.",
      widget: "url",
      order: 1,
    },
    models: {
      label: "Models",
      help: "Models users may bind, each with the reasoning efforts it supports.",
      order: 2,
      advanced: true,
    },
  },
  targetSecretSchema: z.strictObject({}),

  connectionMethods: [
    { id: "api-key", label: "API key", kind: "api-key", secretFields: ["apiKey"] },
  ],

  bindingConfigSchema: openaiBindingConfigSchema,
  bindingForm: {
    model: { label: "Model", widget: "select", order: 1 },
    reasoningEffort: { label: "Reasoning effort", widget: "select", order: 2 },
    instructions: {
      label: "Extra instructions",
      help: "Added to Codex as developer instructions.",
      widget: "textarea",
      order: 3,
    },
  },

  validateBinding: validateOpenaiBinding,
  compileBinding: compileOpenaiBinding,
  mcp: { mcpConfig: codexMcpConfig },
  credentialTest: openaiCredentialTest,
});

import { defineIntegration } from "@keyway/integrations-core";
import { linearBindingConfigSchema } from "./binding-config-schema";
import { compileLinearBinding } from "./compile-binding";
import { linearOAuth2 } from "./oauth2";
import { linearTargetConfigSchema } from "./target-config-schema";
import { linearTargetSecretSchema } from "./target-secret-schema";
import { validateLinearBinding } from "./validate-binding";
import { linearWebhook } from "./webhook";

/**
 * Linear as a connector (SPEC §5): a personal API key or an OAuth2 connection, a route to the
 * GraphQL API and one to Linear's hosted MCP server (exposed to agents as MCP server `linear`),
 * and signed webhooks routed to connections by organization id.
 */
export const linearDefinition = defineIntegration({
  familyId: "linear",
  variantId: "linear",
  kind: "connector",
  displayName: "Linear",
  description:
    "Linear issues, projects and comments through the GraphQL API and Linear's MCP server.",
  logoKey: "linear",
  docsUrl: "https://linear.app/developers",

  targetConfigSchema: linearTargetConfigSchema,
  targetConfigForm: {
    apiUrl: { label: "GraphQL API URL", widget: "url", order: 1, advanced: true },
    mcpUrl: { label: "MCP server URL", widget: "url", order: 2, advanced: true },
    mcpLegacySse: {
      label: "Route the legacy SSE endpoint",
      help: "Also allow Linear's deprecated /sse MCP transport for older MCP clients.",
      widget: "checkbox",
      order: 3,
      advanced: true,
    },
    clientId: {
      label: "OAuth2 client id",
      help: "From the Linear OAuth2 application; needed only for OAuth2 connections.",
      order: 4,
    },
    scopes: { label: "OAuth2 scopes", widget: "list", order: 5 },
    actor: {
      label: "Actor",
      help: "`app` attributes changes made through OAuth2 connections to the application.",
      widget: "select",
      order: 6,
      advanced: true,
    },
    authorizationUrl: { label: "Authorization URL", widget: "url", order: 7, advanced: true },
    tokenUrl: { label: "Token URL", widget: "url", order: 8, advanced: true },
  },
  targetSecretSchema: linearTargetSecretSchema,
  targetSecretForm: {
    clientSecret: { label: "OAuth2 client secret", order: 1 },
    webhookSecret: { label: "Webhook signing secret", order: 2 },
  },

  connectionMethods: [
    { id: "api-key", label: "Personal API key", kind: "api-key", secretFields: ["apiKey"] },
    { id: "oauth2", label: "Sign in with Linear", kind: "oauth2-authorization-code" },
  ],

  bindingConfigSchema: linearBindingConfigSchema,
  bindingForm: {
    mcpToolAllowlist: {
      label: "Allowed MCP tools",
      help: "Leave empty to allow every tool of Linear's MCP server.",
      widget: "list",
      order: 1,
    },
    teamKeys: {
      label: "Teams",
      help: "Team keys (e.g. ENG) this binding is meant for.",
      widget: "list",
      order: 2,
    },
  },

  validateBinding: validateLinearBinding,
  compileBinding: compileLinearBinding,
  oauth2: linearOAuth2,
  webhook: linearWebhook,
});

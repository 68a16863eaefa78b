import { defineIntegration } from "@keyway/integrations-core";
import { httpApiBindingConfigSchema } from "./binding-config-schema";
import { compileHttpApiBinding } from "./compile-binding";
import { httpApiConnectionMethods } from "./connection-methods";
import { httpApiAuthorizationCode } from "./oauth2";
import { httpApiTargetConfigSchema, httpApiTargetSecretSchema } from "./target-config-schema";
import { validateHttpApiBinding } from "./validate-binding";
import { httpApiWebhook } from "./webhook";

/**
 * The generic connector (SPEC §5 `http-api`): an operator describes a REST API in target config
 * (base URL, methods, paths, how the credential is injected, optional OAuth2 token endpoint, MCP
 * server and Standard Webhooks) and users connect with an API key, OAuth2 client credentials (their
 * own client) or the OAuth2 authorization code flow (the operator's client).
 * There is no provider default: every target must name its `baseUrl`.
 */
export const httpApiDefinition = defineIntegration({
  familyId: "http-api",
  variantId: "http-api",
  kind: "connector",
  displayName: "HTTP API",
  description:
    "Any REST API an operator names: API key, OAuth2 client credentials or OAuth2 authorization code, injected by the gateway; optional MCP server and Standard Webhooks.",
  logoKey: "http-api",
  docsUrl: "https://www.standardwebhooks.com/",

  targetConfigSchema: httpApiTargetConfigSchema,
  targetConfigForm: {
    baseUrl: {
      label: "Base URL",
      widget: "url",
      placeholder: "https://api.example.com/v1",
      order: 1,
    },
    allowedMethods: {
      label: "Allowed methods",
      widget: "list",
      help: "Upper-case; empty = any",
      order: 2,
    },
    pathPrefixes: {
      label: "Path prefixes",
      widget: "list",
      help: "Each under the base URL path",
      order: 3,
    },
    auth: { label: "Credential injection", order: 4 },
    oauth2: { label: "OAuth2 endpoints and client", advanced: true, order: 5 },
    mcpServerUrl: { label: "MCP server URL", widget: "url", advanced: true, order: 6 },
    mcpServerName: { label: "MCP server name", advanced: true, order: 7 },
    webhook: { label: "Inbound webhooks", advanced: true, order: 8 },
  },
  targetSecretSchema: httpApiTargetSecretSchema,
  targetSecretForm: {
    clientSecret: { label: "OAuth2 client secret", help: "Of the client named in oauth2.clientId" },
    webhookSecret: { label: "Webhook signing secret", help: "whsec_… shared with the sender" },
  },

  connectionMethods: httpApiConnectionMethods,

  bindingConfigSchema: httpApiBindingConfigSchema,
  bindingForm: {
    pathPrefixes: { label: "Path prefixes", widget: "list", help: "Narrow the target's paths" },
    methods: { label: "Methods", widget: "list", help: "Narrow the target's methods" },
    mcpToolAllowlist: { label: "Allowed MCP tools", widget: "list" },
  },

  validateBinding: validateHttpApiBinding,
  compileBinding: compileHttpApiBinding,

  oauth2: httpApiAuthorizationCode,
  webhook: httpApiWebhook,
});

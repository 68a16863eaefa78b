import { defineIntegration } from "@keyway/integrations-core";
import { atlassianBindingConfigSchema } from "./binding-config-schema";
import { compileAtlassianBinding } from "./compile-binding";
import { atlassianConnectionMethods } from "./connection-methods";
import { atlassianOAuth2 } from "./oauth2";
import { atlassianTargetConfigSchema, atlassianTargetSecretSchema } from "./target-config-schema";

/**
 * Atlassian Cloud (Jira, Confluence, Compass, ...) through the remote Rovo MCP Server, with a
 * personal API token (Basic), a service account API key (Bearer) or an OAuth 2.0 (3LO) access
 * token (Bearer, also on the API gateway's product APIs) injected by the gateway.
 */
export const atlassianDefinition = defineIntegration({
  familyId: "atlassian",
  variantId: "atlassian",
  kind: "connector",
  displayName: "Atlassian",
  description:
    "Jira, Confluence and Compass through the Atlassian Rovo MCP Server and the Atlassian API gateway, with OAuth 2.0 (3LO), a personal API token or a service account API key.",
  logoKey: "atlassian",
  docsUrl:
    "https://support.atlassian.com/atlassian-rovo-mcp-server/docs/configuring-authentication-via-api-token/",

  targetConfigSchema: atlassianTargetConfigSchema,
  targetConfigForm: {
    mcpUrl: { label: "MCP server URL", widget: "url", advanced: true },
    siteUrl: {
      label: "Cloud site URL",
      widget: "url",
      placeholder: "https://example.atlassian.net",
      help: "Lets personal API token connections call the site's REST APIs too",
    },
  },
  targetSecretSchema: atlassianTargetSecretSchema,
  targetSecretForm: { clientSecret: { label: "OAuth 2.0 app secret" } },

  connectionMethods: atlassianConnectionMethods,

  bindingConfigSchema: atlassianBindingConfigSchema,
  bindingForm: { mcpToolAllowlist: { label: "Allowed MCP tools", widget: "list" } },

  compileBinding: compileAtlassianBinding,
  oauth2: atlassianOAuth2,
});

import { defineIntegration } from "@keyway/integrations-core";
import { slackBindingConfigSchema } from "./binding-config-schema";
import { compileSlackBinding } from "./compile-binding";
import { slackOAuth2 } from "./oauth2";
import { slackTargetConfigSchema } from "./target-config-schema";
import { slackTargetSecretSchema } from "./target-secret-schema";
import { validateSlackBinding } from "./validate-binding";
import { slackWebhook } from "./webhook";

/**
 * Slack as a connector (SPEC §5): a bot token from an OAuth v2 install (refreshed when token
 * rotation is on) or pasted by hand for a single-workspace app, one bearer route to the Web
 * API, and Events API webhooks routed to connections by workspace (team) id.
 */
export const slackDefinition = defineIntegration({
  familyId: "slack",
  variantId: "slack",
  kind: "connector",
  displayName: "Slack",
  description: "Slack's Web API with a bot token, and Events API webhooks.",
  logoKey: "slack",
  docsUrl: "https://docs.slack.dev",

  targetConfigSchema: slackTargetConfigSchema,
  targetConfigForm: {
    clientId: {
      label: "Client id",
      help: "From the Slack app's Basic Information page; needed only for OAuth2 installs.",
      order: 1,
    },
    scopes: { label: "Bot scopes", widget: "list", order: 2 },
    userScopes: { label: "User scopes", widget: "list", order: 3, advanced: true },
    pkce: {
      label: "Use PKCE",
      help: "Only for Slack apps that have PKCE enabled (which makes them public clients).",
      widget: "checkbox",
      order: 4,
      advanced: true,
    },
    apiUrl: { label: "Web API URL", widget: "url", order: 5, advanced: true },
    authorizationUrl: { label: "Authorization URL", widget: "url", order: 6, advanced: true },
    tokenUrl: { label: "Token URL", widget: "url", order: 7, advanced: true },
  },
  targetSecretSchema: slackTargetSecretSchema,
  targetSecretForm: {
    clientSecret: { label: "Client secret", order: 1 },
    signingSecret: { label: "Signing secret", help: "Verifies Events API requests.", order: 2 },
  },

  connectionMethods: [
    { id: "oauth2", label: "Add to Slack", kind: "oauth2-authorization-code" },
    { id: "bot-token", label: "Bot token", kind: "api-key", secretFields: ["botToken"] },
  ],

  bindingConfigSchema: slackBindingConfigSchema,
  bindingForm: {
    defaultChannel: {
      label: "Default channel",
      help: "A channel id (C0123ABCD) or #channel-name agents post to by default.",
      order: 1,
    },
  },

  validateBinding: validateSlackBinding,
  compileBinding: compileSlackBinding,
  oauth2: slackOAuth2,
  webhook: slackWebhook,
});

import { httpBaseUrlSchema, singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const SLACK_DEFAULT_API_URL = "https://slack.com/api";
// docs.slack.dev/authentication/installing-with-oauth
export const SLACK_DEFAULT_AUTHORIZATION_URL = "https://slack.com/oauth/v2/authorize";
export const SLACK_DEFAULT_TOKEN_URL = "https://slack.com/api/oauth.v2.access";

/** Slack scope names (`chat:write`, `channels:history`, `users:read.email`...). */
const slackScopeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_.:-]*$/, "scope holds lower-case letters, digits and _ . : - only");

export const slackTargetConfigSchema = z.strictObject({
  apiUrl: httpBaseUrlSchema.default(SLACK_DEFAULT_API_URL),
  authorizationUrl: httpBaseUrlSchema.default(SLACK_DEFAULT_AUTHORIZATION_URL),
  tokenUrl: httpBaseUrlSchema.default(SLACK_DEFAULT_TOKEN_URL),
  /** Slack app client id; not secret, required only for the OAuth2 method. */
  clientId: singleLineTextSchema.min(1).optional(),
  /** Bot token scopes (`scope` on the authorize URL). */
  scopes: z
    .array(slackScopeSchema)
    .min(1)
    .default(() => ["channels:history", "channels:read", "chat:write", "users:read"]),
  /** User token scopes (`user_scope`); Keyway routes the bot token, so usually empty. */
  userScopes: z.array(slackScopeSchema).default(() => []),
  /**
   * Send PKCE parameters. Only for Slack apps with PKCE enabled in their settings: enabling it
   * turns the app into a public client for good (docs.slack.dev changelog 2026-03-30), so a
   * server-side app like Keyway's usually leaves it off and relies on its client secret.
   */
  pkce: z.boolean().default(false),
});

export type SlackTargetConfig = z.infer<typeof slackTargetConfigSchema>;

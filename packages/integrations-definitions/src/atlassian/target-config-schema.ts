import {
  credentialSecretSchema,
  httpBaseUrlSchema,
  httpUrlSettingSchema,
  normalizePathPrefix,
  routeHostSchema,
  singleLineTextSchema,
  splitBaseUrl,
} from "@keyway/integrations-core";
import { z } from "zod";

/**
 * The Atlassian Rovo MCP Server's Streamable HTTP endpoint. Atlassian retired the older HTTP+SSE
 * endpoint (`/v1/sse`, supported only until 30 June 2026), so no route or server is made for it.
 * Sources: support.atlassian.com/atlassian-rovo-mcp-server/docs/configuring-authentication-via-api-token
 * and the "HTTP+SSE Deprecation Notice" on community.atlassian.com.
 */
export const ATLASSIAN_DEFAULT_MCP_URL = "https://mcp.atlassian.com/v1/mcp";

/**
 * OAuth 2.0 (3LO) endpoints (developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps):
 * consent at auth.atlassian.com, tokens from its `/oauth/token`, and the sites a token reaches
 * (each with its cloud id) from `accessible-resources` on the API gateway, through which every
 * 3LO call goes (`https://api.atlassian.com/ex/{product}/{cloudId}/...`).
 */
export const ATLASSIAN_DEFAULT_AUTHORIZATION_URL = "https://auth.atlassian.com/authorize";
export const ATLASSIAN_DEFAULT_TOKEN_URL = "https://auth.atlassian.com/oauth/token";
export const ATLASSIAN_DEFAULT_API_URL = "https://api.atlassian.com";

/** Classic and granular 3LO scope names (`read:jira-work`, `read:page:confluence`, `offline_access`). */
const atlassianScopeSchema = z
  .string()
  .regex(/^[A-Za-z0-9:_.-]+$/, "scope holds letters, digits and : _ . - only");

/** True when a route can be built from the URL: a host the plan can name, a matchable path. */
function isRoutable(value: string): boolean {
  // zod runs refinements after a failed format check too; that failure is reported already.
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) return true;
  const parts = splitBaseUrl(value);
  return (
    routeHostSchema.safeParse(parts.host).success && normalizePathPrefix(parts.pathPrefix) !== null
  );
}

const routableMessage =
  "URL must have a DNS or IPv4 host and a path without encoded slashes, backslashes or NUL";

export const atlassianTargetConfigSchema = z.strictObject({
  mcpUrl: httpBaseUrlSchema.refine(isRoutable, routableMessage).default(ATLASSIAN_DEFAULT_MCP_URL),
  /**
   * A Cloud site (`https://<site>.atlassian.net`) whose REST APIs API-token connections may call
   * directly. Absent = MCP only.
   */
  siteUrl: httpUrlSettingSchema({ httpsOnly: true })
    .refine(
      (value) => !URL.canParse(value) || new URL(value).pathname === "/",
      "site URL is an origin such as https://example.atlassian.net, without a path",
    )
    .refine(isRoutable, routableMessage)
    .optional(),
  /** The operator's 3LO app (developer console client id); required by the OAuth2 method. */
  clientId: singleLineTextSchema.min(1).max(512).optional(),
  authorizationUrl: httpUrlSettingSchema({ query: true }).default(
    ATLASSIAN_DEFAULT_AUTHORIZATION_URL,
  ),
  tokenUrl: httpUrlSettingSchema({ query: true }).default(ATLASSIAN_DEFAULT_TOKEN_URL),
  /** The API gateway: `accessible-resources` and the `/ex/...` product APIs of OAuth2 connections. */
  apiUrl: httpBaseUrlSchema.refine(isRoutable, routableMessage).default(ATLASSIAN_DEFAULT_API_URL),
  /** `offline_access` makes Atlassian issue (rotating) refresh tokens. */
  scopes: z
    .array(atlassianScopeSchema)
    .min(1)
    .default(() => ["read:jira-work", "write:jira-work", "read:jira-user", "offline_access"]),
});

export type AtlassianTargetConfig = z.infer<typeof atlassianTargetConfigSchema>;

/**
 * Atlassian API tokens belong to users or service accounts (connections), never to the operator;
 * the operator holds only its 3LO app's secret.
 */
export const atlassianTargetSecretSchema = z.strictObject({
  clientSecret: credentialSecretSchema.optional(),
});

export type AtlassianTargetSecrets = z.infer<typeof atlassianTargetSecretSchema>;

import {
  httpBaseUrlSchema,
  httpUrlSettingSchema,
  normalizePathPrefix,
  routeHostSchema,
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
});

export type AtlassianTargetConfig = z.infer<typeof atlassianTargetConfigSchema>;

/** Atlassian API tokens belong to users or service accounts (connections), never to the operator. */
export const atlassianTargetSecretSchema = z.strictObject({});

export type AtlassianTargetSecrets = z.infer<typeof atlassianTargetSecretSchema>;

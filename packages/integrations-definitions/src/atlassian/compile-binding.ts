import {
  type BindingContext,
  type CompileBindingOutput,
  normalizePathPrefix,
  type RouteAuth,
  type RouteDraft,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { AtlassianBindingConfig } from "./binding-config-schema";
import { atlassianApiTokenConfigSchema } from "./connection-methods";
import type { AtlassianTargetConfig } from "./target-config-schema";

export type AtlassianBindingContext = BindingContext<
  AtlassianTargetConfig,
  unknown,
  AtlassianBindingConfig
>;

export const ATLASSIAN_MCP_SERVER_NAME = "atlassian";

/**
 * REST API roots on a Cloud site: Jira (`/rest/api`, `/rest/agile`, `/rest/servicedeskapi`) and
 * Confluence (`/wiki/rest/api`, `/wiki/api/v2`). The site's web UI stays out of reach.
 */
/** Product APIs behind the API gateway, for OAuth 2.0 (3LO) connections. */
export const ATLASSIAN_OAUTH2_API_PREFIX = "/ex";

export const ATLASSIAN_SITE_REST_PREFIXES = ["/rest", "/wiki/api", "/wiki/rest"] as const;

/**
 * The MCP route (and server entry) with the connection's auth style; for OAuth 2.0 (3LO)
 * connections a route to the API gateway's product APIs with the same bearer token; for personal API
 * tokens on a target that names a site, a REST route to that site with the same Basic auth.
 * Service account keys get no site route: Atlassian accepts them only through
 * `api.atlassian.com/ex/{product}/{cloudId}`, never on `<site>.atlassian.net`.
 */
export function compileAtlassianBinding({
  target,
  connection,
  binding,
}: AtlassianBindingContext): CompileBindingOutput {
  const auth = routeAuthFor(connection.methodId, connection.config);
  const credential = {
    secretType:
      connection.methodKind === "oauth2-authorization-code" ? "oauth2_access_token" : "api_key",
  };
  const mcp = splitBaseUrl(target.config.mcpUrl);
  const toolAllowlist = binding.config.mcpToolAllowlist;
  const routes: RouteDraft[] = [
    {
      match: {
        hosts: [mcp.host],
        pathPrefixes: [normalizePathPrefix(mcp.pathPrefix) ?? mcp.pathPrefix],
      },
      upstream: { baseUrl: mcp.origin },
      auth,
      credential,
      ...(toolAllowlist !== undefined ? { mcp: { toolAllowlist: [...toolAllowlist] } } : {}),
    },
  ];
  if (connection.methodKind === "oauth2-authorization-code") {
    // 3LO tokens reach product APIs only through the API gateway (`/ex/{product}/{cloudId}`).
    const api = splitBaseUrl(target.config.apiUrl);
    routes.push({
      match: { hosts: [api.host], pathPrefixes: [ATLASSIAN_OAUTH2_API_PREFIX] },
      upstream: { baseUrl: api.origin },
      auth,
      credential,
    });
  }
  const siteUrl = target.config.siteUrl;
  if (siteUrl !== undefined && auth.type === "basic") {
    const site = splitBaseUrl(siteUrl);
    routes.push({
      match: { hosts: [site.host], pathPrefixes: [...ATLASSIAN_SITE_REST_PREFIXES] },
      upstream: { baseUrl: site.origin },
      auth,
      credential,
    });
  }
  return {
    routes,
    mcpServers: [
      { name: ATLASSIAN_MCP_SERVER_NAME, transport: "streamable-http", url: target.config.mcpUrl },
    ],
  };
}

function routeAuthFor(methodId: string, connectionConfig: unknown): RouteAuth {
  if (methodId === "service-account" || methodId === "oauth2") {
    return { type: "bearer", name: "authorization", scheme: "Bearer" };
  }
  // The compiler parsed the config with this method's schema already; parsing again narrows it.
  const config = atlassianApiTokenConfigSchema.safeParse(connectionConfig);
  if (!config.success) throw new TypeError("api-token connection config has no valid email");
  return { type: "basic", name: "authorization", username: config.data.email };
}

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
export const ATLASSIAN_SITE_REST_PREFIXES = ["/rest", "/wiki/api", "/wiki/rest"] as const;

/**
 * The MCP route (and server entry) with the connection's auth style, and, for personal API
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
  const credential = { secretType: "api_key" };
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
  if (methodId === "service-account") {
    return { type: "bearer", name: "authorization", scheme: "Bearer" };
  }
  // The compiler parsed the config with this method's schema already; parsing again narrows it.
  const config = atlassianApiTokenConfigSchema.safeParse(connectionConfig);
  if (!config.success) throw new TypeError("api-token connection config has no valid email");
  return { type: "basic", name: "authorization", username: config.data.email };
}

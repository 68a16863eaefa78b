import {
  type BindingContext,
  type CompileBindingOutput,
  type RouteAuth,
  type RouteDraft,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { LinearBindingConfig } from "./binding-config-schema";
import type { LinearTargetConfig } from "./target-config-schema";

export const LINEAR_MCP_SERVER_NAME = "linear";

/** Linear's deprecated SSE endpoint, a sibling of `/mcp` on the MCP host. */
const LINEAR_LEGACY_SSE_PATH = "/sse";

const BEARER: RouteAuth = { type: "bearer", name: "authorization", scheme: "Bearer" };

/**
 * The GraphQL API route and the MCP route. Linear reads a personal API key from `Authorization`
 * with no scheme and an OAuth token as `Bearer` (linear.app/developers/graphql), so the API
 * route's auth follows the connection method; the MCP server takes either as `Bearer`.
 */
export function compileLinearBinding(
  input: BindingContext<LinearTargetConfig, unknown, LinearBindingConfig>,
): CompileBindingOutput {
  const { config } = input.target;
  const oauth = input.connection.methodKind === "oauth2-authorization-code";
  const secretType = oauth ? "oauth2_access_token" : "api_key";

  const api = splitBaseUrl(config.apiUrl);
  const mcp = splitBaseUrl(config.mcpUrl);
  const mcpPrefixes =
    config.mcpLegacySse && mcp.pathPrefix !== "/" && mcp.pathPrefix !== LINEAR_LEGACY_SSE_PATH
      ? [mcp.pathPrefix, LINEAR_LEGACY_SSE_PATH]
      : [mcp.pathPrefix];
  const toolAllowlist = input.binding.config.mcpToolAllowlist;

  const apiRoute: RouteDraft = {
    match: { hosts: [api.host], pathPrefixes: [api.pathPrefix] },
    upstream: { baseUrl: api.origin },
    auth: oauth ? BEARER : { type: "header", name: "authorization" },
    credential: { secretType },
  };
  const mcpRoute: RouteDraft = {
    match: { hosts: [mcp.host], pathPrefixes: mcpPrefixes },
    upstream: { baseUrl: mcp.origin },
    auth: BEARER,
    credential: { secretType },
    ...(toolAllowlist ? { mcp: { toolAllowlist: [...toolAllowlist] } } : {}),
  };

  return {
    routes: [apiRoute, mcpRoute],
    mcpServers: [
      { name: LINEAR_MCP_SERVER_NAME, transport: "streamable-http", url: config.mcpUrl },
    ],
  };
}

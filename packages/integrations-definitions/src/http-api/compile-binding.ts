import {
  type CompileBindingOutput,
  type RouteDraft,
  splitBaseUrl,
} from "@keyway/integrations-core";
import { apiRouteAuth, apiRouteMatch, mcpRouteMatch, mcpServerNameFor } from "./route-matches";
import type { HttpApiBindingContext } from "./validate-binding";

/**
 * One route to the API (the target's host, narrowed by the binding, with the operator's injection
 * style) and, when the target names an MCP server, one bearer route to it plus the server entry.
 * The credential is the connection's API key or its OAuth2 access token (either grant).
 */
export function compileHttpApiBinding({
  target,
  connection,
  binding,
}: HttpApiBindingContext): CompileBindingOutput {
  const config = target.config;
  const credential = {
    secretType: connection.methodKind === "api-key" ? "api_key" : "oauth2_access_token",
  };
  const routes: RouteDraft[] = [
    {
      match: apiRouteMatch(config, binding.config),
      upstream: { baseUrl: splitBaseUrl(config.baseUrl).origin },
      auth: apiRouteAuth(config.auth),
      credential,
    },
  ];
  if (config.mcpServerUrl === undefined) return { routes };

  const toolAllowlist = binding.config.mcpToolAllowlist;
  routes.push({
    match: mcpRouteMatch(config.mcpServerUrl),
    upstream: { baseUrl: splitBaseUrl(config.mcpServerUrl).origin },
    auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
    credential,
    ...(toolAllowlist !== undefined ? { mcp: { toolAllowlist: [...toolAllowlist] } } : {}),
  });
  return {
    routes,
    mcpServers: [
      {
        name: mcpServerNameFor(config, target.targetKey),
        transport: "streamable-http",
        url: config.mcpServerUrl,
      },
    ],
  };
}

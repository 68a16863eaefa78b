import {
  type BindingContext,
  type BindingIssue,
  normalizePathPrefix,
  pathHasPrefix,
  routesOverlap,
} from "@keyway/integrations-core";
import type { HttpApiBindingConfig } from "./binding-config-schema";
import { apiRouteMatch, mcpRouteMatch, targetPathPrefixes } from "./route-matches";
import type { HttpApiTargetConfig } from "./target-config-schema";

export type HttpApiBindingContext = BindingContext<
  HttpApiTargetConfig,
  unknown,
  HttpApiBindingConfig
>;

/**
 * Rules that need the target, the connection and the binding together. A binding may only narrow
 * what the operator allowed, never widen it.
 */
export function validateHttpApiBinding({
  target,
  connection,
  binding,
}: HttpApiBindingContext): BindingIssue[] {
  const issues: BindingIssue[] = [];
  const config = target.config;

  if (connection.methodKind !== "api-key" && config.oauth2 === undefined) {
    issues.push({
      code: "http-api.oauth2_not_configured",
      field: "",
      message: `target ${target.targetKey} has no OAuth2 token endpoint, so OAuth2 connections cannot be used`,
    });
  }

  const allowedPrefixes = targetPathPrefixes(config);
  for (const [i, prefix] of (binding.config.pathPrefixes ?? []).entries()) {
    const normalized = normalizePathPrefix(prefix);
    if (
      normalized === null ||
      !allowedPrefixes.some((allowed) => pathHasPrefix(normalized, allowed))
    ) {
      issues.push({
        code: "http-api.path_outside_target",
        field: `pathPrefixes.${i}`,
        message: `${prefix} is not under the target's path prefixes (${allowedPrefixes.join(", ")})`,
      });
    }
  }

  const allowedMethods = config.allowedMethods;
  if (allowedMethods !== undefined) {
    for (const [i, method] of (binding.config.methods ?? []).entries()) {
      if (!allowedMethods.includes(method)) {
        issues.push({
          code: "http-api.method_not_allowed",
          field: `methods.${i}`,
          message: `${method} is not among the target's allowed methods (${allowedMethods.join(", ")})`,
        });
      }
    }
  }

  if (config.mcpServerUrl === undefined) {
    if (binding.config.mcpToolAllowlist !== undefined) {
      issues.push({
        code: "http-api.mcp_not_configured",
        field: "mcpToolAllowlist",
        message: `target ${target.targetKey} has no MCP server to restrict`,
      });
    }
  } else if (
    routesOverlap(apiRouteMatch(config, binding.config), mcpRouteMatch(config.mcpServerUrl))
  ) {
    // At most one route may match a request; an MCP request matched by the API route would
    // escape the tool allow-list, so the two must be told apart by host or path.
    issues.push({
      code: "http-api.mcp_route_overlaps_api",
      field: "",
      message:
        "the MCP server URL shares host and path with the API routes; give them disjoint path prefixes",
    });
  }

  return issues;
}

import {
  normalizePathPrefix,
  type RouteAuth,
  type RouteMatch,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { HttpApiBindingConfig } from "./binding-config-schema";
import type { HttpApiAuth, HttpApiTargetConfig } from "./target-config-schema";

/**
 * Route shapes shared by validation and compilation, so what `validateBinding` checks is exactly
 * what `compileBinding` emits.
 */

/** The target's path prefixes, normalized as the matcher reads them (absent = the base URL path). */
export function targetPathPrefixes(config: HttpApiTargetConfig): string[] {
  const configured = config.pathPrefixes ?? [splitBaseUrl(config.baseUrl).pathPrefix];
  return normalizedPrefixes(configured);
}

/** The API route's match: the target's host with the binding's narrowing applied. */
export function apiRouteMatch(
  config: HttpApiTargetConfig,
  binding: HttpApiBindingConfig,
): RouteMatch {
  const methods = binding.methods ?? config.allowedMethods;
  return {
    hosts: [splitBaseUrl(config.baseUrl).host],
    ...(methods !== undefined ? { methods: [...methods] } : {}),
    pathPrefixes: binding.pathPrefixes
      ? normalizedPrefixes(binding.pathPrefixes)
      : targetPathPrefixes(config),
  };
}

/** The MCP server's route match (any method: streamable HTTP uses POST, GET and DELETE). */
export function mcpRouteMatch(mcpServerUrl: string): RouteMatch {
  const parts = splitBaseUrl(mcpServerUrl);
  return { hosts: [parts.host], pathPrefixes: normalizedPrefixes([parts.pathPrefix]) };
}

export function apiRouteAuth(auth: HttpApiAuth): RouteAuth {
  switch (auth.type) {
    case "bearer":
      return { type: "bearer", name: "authorization", scheme: "Bearer" };
    case "header":
      return {
        type: "header",
        name: auth.name.toLowerCase(),
        ...(auth.scheme !== undefined ? { scheme: auth.scheme } : {}),
      };
    case "query":
      return { type: "query", name: auth.name };
    case "basic":
      return { type: "basic", name: "authorization", username: auth.username };
  }
}

/**
 * The MCP server's name in agent configs: the configured name, else the target key reduced to
 * the characters the plan allows, so two http-api targets get distinct names by default.
 */
export function mcpServerNameFor(config: HttpApiTargetConfig, targetKey: string): string {
  if (config.mcpServerName !== undefined) return config.mcpServerName;
  const reduced = targetKey
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .slice(0, 64)
    .replace(/^-+|-+$/g, "");
  return reduced === "" ? "http-api" : reduced;
}

// Prefixes failing normalization were refused by the schemas; dropping them here keeps this
// total for callers that skipped parsing.
function normalizedPrefixes(prefixes: readonly string[]): string[] {
  const out: string[] = [];
  for (const prefix of prefixes) {
    const normalized = normalizePathPrefix(prefix);
    if (normalized !== null && !out.includes(normalized)) out.push(normalized);
  }
  return out;
}

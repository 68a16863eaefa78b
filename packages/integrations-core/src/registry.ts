import { z } from "zod";
import type { AnyIntegrationDefinition } from "./definition";

export type RegistryErrorCode =
  | "duplicate_definition"
  | "invalid_definition"
  | "unknown_definition";

export class RegistryError extends Error {
  override readonly name = "RegistryError";
  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    readonly issues: readonly string[] = [],
  ) {
    super(issues.length > 0 ? `${message}: ${issues.join("; ")}` : message);
  }
}

const idPattern = /^[a-z][a-z0-9-]*$/;
const methodKinds = new Set([
  "api-key",
  "oauth2-authorization-code",
  "oauth2-client-credentials",
  "github-app-installation",
]);

/** Structural checks a definition must pass before it can be registered. */
export function validateDefinition(definition: AnyIntegrationDefinition): string[] {
  const issues: string[] = [];
  const d = definition;
  for (const key of ["familyId", "variantId"] as const) {
    if (typeof d[key] !== "string" || !idPattern.test(d[key])) {
      issues.push(`${key} must match ${idPattern}`);
    }
  }
  if (!["agent", "git", "connector"].includes(d.kind))
    issues.push("kind must be agent|git|connector");
  for (const key of ["displayName", "description", "logoKey", "docsUrl"] as const) {
    if (typeof d[key] !== "string" || d[key].length === 0) issues.push(`${key} is required`);
  }
  for (const key of ["targetConfigSchema", "targetSecretSchema", "bindingConfigSchema"] as const) {
    if (!(d[key] instanceof z.ZodType)) issues.push(`${key} must be a zod schema`);
  }
  if (!Array.isArray(d.connectionMethods) || d.connectionMethods.length === 0) {
    issues.push("connectionMethods must list at least one method");
  } else {
    const seen = new Set<string>();
    for (const [i, method] of d.connectionMethods.entries()) {
      if (!idPattern.test(method.id))
        issues.push(`connectionMethods[${i}].id must match ${idPattern}`);
      if (seen.has(method.id)) issues.push(`connectionMethods[${i}].id "${method.id}" is repeated`);
      seen.add(method.id);
      if (!methodKinds.has(method.kind)) issues.push(`connectionMethods[${i}].kind is unknown`);
      if (method.configSchema !== undefined && !(method.configSchema instanceof z.ZodType)) {
        issues.push(`connectionMethods[${i}].configSchema must be a zod schema`);
      }
      const oauthKind =
        method.kind === "oauth2-authorization-code" || method.kind === "oauth2-client-credentials";
      if (oauthKind && !d.oauth2) issues.push(`connectionMethods[${i}] needs oauth2 behaviour`);
      if (method.kind === "oauth2-client-credentials" && !d.oauth2?.clientCredentials) {
        issues.push(`connectionMethods[${i}] needs oauth2.clientCredentials`);
      }
      if (method.kind === "github-app-installation" && !d.appInstallation) {
        issues.push(`connectionMethods[${i}] needs appInstallation behaviour`);
      }
    }
  }
  if (typeof d.compileBinding !== "function") issues.push("compileBinding must be a function");
  if (d.mcp?.mcpConfig && d.kind !== "agent") issues.push("only agent definitions have mcpConfig");
  if (d.webhook && d.webhook.eventTypes.length === 0) issues.push("webhook.eventTypes is empty");
  return issues;
}

/**
 * The set of definitions a deployment knows, keyed by `variantId`. Built once at start-up;
 * `registerMany` is atomic: either every definition is added or none is.
 */
export class IntegrationRegistry {
  readonly #byVariant = new Map<string, AnyIntegrationDefinition>();

  register(definition: AnyIntegrationDefinition): this {
    return this.registerMany([definition]);
  }

  registerMany(definitions: readonly AnyIntegrationDefinition[]): this {
    const incoming = new Set<string>();
    for (const definition of definitions) {
      const issues = validateDefinition(definition);
      const label = typeof definition.variantId === "string" ? definition.variantId : "(unnamed)";
      if (issues.length > 0) {
        throw new RegistryError("invalid_definition", `definition ${label} is invalid`, issues);
      }
      if (this.#byVariant.has(definition.variantId) || incoming.has(definition.variantId)) {
        throw new RegistryError(
          "duplicate_definition",
          `definition ${definition.variantId} is already registered`,
        );
      }
      incoming.add(definition.variantId);
    }
    for (const definition of definitions) this.#byVariant.set(definition.variantId, definition);
    return this;
  }

  get(variantId: string): AnyIntegrationDefinition | undefined {
    return this.#byVariant.get(variantId);
  }

  require(variantId: string): AnyIntegrationDefinition {
    const definition = this.#byVariant.get(variantId);
    if (!definition) throw new RegistryError("unknown_definition", `no definition ${variantId}`);
    return definition;
  }

  /** Definitions sorted by variant id. */
  list(): AnyIntegrationDefinition[] {
    return [...this.#byVariant.values()].sort((a, b) =>
      a.variantId < b.variantId ? -1 : a.variantId > b.variantId ? 1 : 0,
    );
  }
}

export function createRegistry(
  definitions: readonly AnyIntegrationDefinition[] = [],
): IntegrationRegistry {
  return new IntegrationRegistry().registerMany(definitions);
}

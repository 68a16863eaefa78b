import type { z } from "zod";
import type { AnyIntegrationDefinition, BindingContext, ConnectionMethod } from "../definition";
import type { IntegrationRegistry } from "../registry";
import { type CompileErrorDetail, type CompileIssue, compileError } from "./compile-error";

/** What the compiler and write-time validation know of a binding (no secrets). */
export interface BindingInput {
  id: string;
  kind: string;
  connectionId: string;
  config: unknown;
}

export interface ConnectionInput {
  id: string;
  targetId: string;
  methodId: string;
  status: "active" | "error" | "revoked";
  config: unknown;
  externalSubjectId?: string;
}

export interface TargetInput {
  id: string;
  targetKey: string;
  variantId: string;
  enabled: boolean;
  config: unknown;
}

export interface BindingLookups {
  registry: IntegrationRegistry;
  connections: ReadonlyMap<string, ConnectionInput>;
  targets: ReadonlyMap<string, TargetInput>;
  /** Parsed target configs by target id, filled lazily so each target is parsed once per compile. */
  parsedTargets?: Map<string, { ok: true; value: unknown } | { ok: false; issues: CompileIssue[] }>;
}

export interface CheckedBinding {
  binding: BindingInput;
  definition: AnyIntegrationDefinition;
  method: ConnectionMethod;
  context: BindingContext<unknown, unknown, unknown>;
}

export type CheckBindingResult =
  | { ok: true; checked: CheckedBinding }
  | { ok: false; errors: CompileErrorDetail[] };

export function zodIssues(error: z.ZodError, prefix = ""): CompileIssue[] {
  return error.issues.map((issue) => ({
    field: [prefix, ...issue.path.map(String)].filter((s) => s !== "").join("."),
    code: issue.code,
    message: issue.message,
  }));
}

/**
 * Every check a binding must pass before it can be compiled. The control plane runs the same
 * function when a profile version is written, so write-time and compile-time validation agree.
 */
export function checkBinding(binding: BindingInput, lookups: BindingLookups): CheckBindingResult {
  const fail = (error: CompileErrorDetail): CheckBindingResult => ({ ok: false, errors: [error] });
  const connection = lookups.connections.get(binding.connectionId);
  if (!connection) {
    return fail(
      compileError(
        "connection_not_found",
        [binding.id],
        `binding ${binding.id} refers to unknown connection ${binding.connectionId}`,
      ),
    );
  }
  const target = lookups.targets.get(connection.targetId);
  if (!target) {
    return fail(
      compileError(
        "target_not_found",
        [binding.id],
        `connection ${connection.id} refers to unknown target ${connection.targetId}`,
      ),
    );
  }
  const definition = lookups.registry.get(target.variantId);
  if (!definition) {
    return fail(
      compileError(
        "unknown_definition",
        [binding.id],
        `target ${target.targetKey} uses unknown definition ${target.variantId}`,
      ),
    );
  }
  if (!target.enabled) {
    return fail(
      compileError("target_disabled", [binding.id], `target ${target.targetKey} is disabled`),
    );
  }
  if (connection.status !== "active") {
    return fail(
      compileError(
        "connection_not_active",
        [binding.id],
        `connection ${connection.id} is ${connection.status}, not active`,
      ),
    );
  }
  if (binding.kind !== definition.kind) {
    return fail(
      compileError(
        "kind_mismatch",
        [binding.id],
        `binding ${binding.id} has kind ${binding.kind} but ${definition.variantId} is ${definition.kind}`,
      ),
    );
  }
  const method = definition.connectionMethods.find((m) => m.id === connection.methodId);
  if (!method) {
    return fail(
      compileError(
        "unknown_connection_method",
        [binding.id],
        `connection ${connection.id} uses method ${connection.methodId}, unknown to ${definition.variantId}`,
      ),
    );
  }

  const errors: CompileErrorDetail[] = [];
  const targetConfig = parseTargetConfig(target, definition, lookups);
  if (!targetConfig.ok) {
    errors.push(
      compileError(
        "invalid_target_config",
        [binding.id],
        `target ${target.targetKey} has an invalid config`,
        targetConfig.issues,
      ),
    );
  }
  const connectionConfig = method.configSchema
    ? method.configSchema.safeParse(connection.config ?? {})
    : ({ success: true, data: {} } as const);
  if (!connectionConfig.success) {
    errors.push(
      compileError(
        "invalid_connection_config",
        [binding.id],
        `connection ${connection.id} has an invalid config`,
        zodIssues(connectionConfig.error),
      ),
    );
  }
  const bindingConfig = definition.bindingConfigSchema.safeParse(binding.config ?? {});
  if (!bindingConfig.success) {
    errors.push(
      compileError(
        "invalid_binding_config",
        [binding.id],
        `binding ${binding.id} has an invalid config`,
        zodIssues(bindingConfig.error),
      ),
    );
  }
  if (!targetConfig.ok || !connectionConfig.success || !bindingConfig.success) {
    return { ok: false, errors };
  }

  const context: BindingContext<unknown, unknown, unknown> = {
    target: { id: target.id, targetKey: target.targetKey, config: targetConfig.value },
    connection: {
      id: connection.id,
      methodId: method.id,
      methodKind: method.kind,
      config: connectionConfig.data,
      ...(connection.externalSubjectId !== undefined
        ? { externalSubjectId: connection.externalSubjectId }
        : {}),
    },
    binding: { id: binding.id, config: bindingConfig.data },
  };
  const issues = definition.validateBinding?.(context) ?? [];
  if (issues.length > 0) {
    return fail(
      compileError(
        "binding_validation_failed",
        [binding.id],
        `binding ${binding.id} is not valid for target ${target.targetKey}`,
        issues.map((i) => ({ field: i.field, code: i.code, message: i.message })),
      ),
    );
  }
  return { ok: true, checked: { binding, definition, method, context } };
}

function parseTargetConfig(
  target: TargetInput,
  definition: AnyIntegrationDefinition,
  lookups: BindingLookups,
): { ok: true; value: unknown } | { ok: false; issues: CompileIssue[] } {
  const cached = lookups.parsedTargets?.get(target.id);
  if (cached) return cached;
  const parsed = definition.targetConfigSchema.safeParse(target.config ?? {});
  const result = parsed.success
    ? ({ ok: true, value: parsed.data } as const)
    : ({ ok: false, issues: zodIssues(parsed.error) } as const);
  lookups.parsedTargets?.set(target.id, result);
  return result;
}

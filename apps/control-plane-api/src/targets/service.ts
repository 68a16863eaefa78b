import type { KeyRing } from "@keyway/crypto";
import { type Database, type Executor, integrationTargets, newId } from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type Clock,
  canonicalJson,
  type IntegrationRegistry,
  type JsonSchemaForm,
  type TargetView,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
import { asc, eq } from "drizzle-orm";
import { z } from "zod";
import { appendAudit } from "../audit/service";
import { decryptTargetSecrets, encryptTargetSecrets } from "../credentials/secret-store";
import { badRequest, conflict, notFound, unprocessable } from "../errors";
import { publishInvalidation } from "../events/invalidations";
import type { CreateTargetInput, OperatorTarget, PublicTarget, UpdateTargetInput } from "./schemas";
import {
  fieldIssuesAt,
  parseTargetConfig,
  parseTargetSecrets,
  secretFieldNames,
} from "./target-config";

export type TargetRow = typeof integrationTargets.$inferSelect;

/** What the target services need; `AppDeps` provides all of it. */
export interface TargetServiceDeps {
  registry: IntegrationRegistry;
  keyRing: KeyRing;
  clock: Clock;
}

// ----- for other modules -----------------------------------------------------------------------

export type TargetRef = { id: string } | { targetKey: string };

/** An enabled target ready for use: its definition and parsed config; secrets on demand. */
export interface UsableTarget {
  row: TargetRow;
  definition: AnyIntegrationDefinition;
  /** The stored config parsed by the definition's target config schema (defaults applied). */
  config: unknown;
  /** What definitions receive (`TargetView`): id, key and parsed config. */
  view: TargetView<unknown>;
  /**
   * Decrypts and parses the target secrets when called (not before: most uses — compile,
   * listings — need none). Throws if the stored secrets no longer satisfy the definition.
   */
  secrets(): unknown;
}

/**
 * Loads a target for use by connections, compilation, credential resolution and webhooks.
 * Throws `not_found` (404) for an unknown target or one whose definition this deployment no longer
 * has, 422 `target_disabled` for a disabled one and 422 `target_config_invalid` when its stored
 * config does not parse (e.g. after a definition changed); callers that answer differently (a
 * webhook ingest says 404 for disabled targets) catch these by code.
 */
export async function loadTargetForUse(
  executor: Executor,
  deps: Pick<TargetServiceDeps, "registry" | "keyRing">,
  ref: TargetRef,
): Promise<UsableTarget> {
  const [row] = await executor
    .select()
    .from(integrationTargets)
    .where(
      "id" in ref
        ? eq(integrationTargets.id, ref.id)
        : eq(integrationTargets.targetKey, ref.targetKey),
    )
    .limit(1);
  const definition = row ? deps.registry.get(row.variantId) : undefined;
  if (!row || !definition) throw notFound("target");
  if (!row.enabled) {
    throw unprocessable("target_disabled", `target ${row.targetKey} is disabled`, {
      targetKey: row.targetKey,
    });
  }
  const config = parseTargetConfig(definition, row.config);
  if (!config.ok) throw targetConfigInvalid(row.targetKey, config.issues);
  const { keyRing } = deps;
  return {
    row,
    definition,
    config: config.value,
    view: { id: row.id, targetKey: row.targetKey, config: config.value },
    secrets() {
      const stored = decryptTargetSecrets(keyRing, row.id, row.secretsCiphertext);
      const parsed = parseTargetSecrets(definition, stored);
      if (!parsed.ok) {
        throw unprocessable(
          "target_secrets_invalid",
          `the secrets of target ${row.targetKey} do not satisfy its definition`,
          { issues: fieldIssuesAt("secrets", parsed.issues) },
        );
      }
      return parsed.value;
    },
  };
}

function targetConfigInvalid(targetKey: string, issues: Parameters<typeof fieldIssuesAt>[1]) {
  return unprocessable(
    "target_config_invalid",
    `the config of target ${targetKey} does not satisfy its definition`,
    { issues: fieldIssuesAt("config", issues) },
  );
}

// ----- operator view ---------------------------------------------------------------------------

export function toOperatorTarget(
  row: TargetRow,
  deps: Pick<TargetServiceDeps, "registry" | "keyRing">,
): OperatorTarget {
  const definition = deps.registry.get(row.variantId);
  const parsed = definition ? parseTargetConfig(definition, row.config) : undefined;
  return {
    id: row.id,
    targetKey: row.targetKey,
    familyId: row.familyId,
    variantId: row.variantId,
    kind: row.kind,
    enabled: row.enabled,
    source: row.source,
    displayName: row.displayName,
    description: row.description,
    definition: definition
      ? {
          displayName: definition.displayName,
          description: definition.description,
          docsUrl: definition.docsUrl,
        }
      : null,
    config: row.config,
    configValid: parsed?.ok === true,
    configIssues: !parsed
      ? [{ field: "variantId", code: "unknown_variant", message: "definition not registered" }]
      : parsed.ok
        ? []
        : fieldIssuesAt("config", parsed.issues),
    // Names come from the decrypted set: the ciphertext is the only place they are stored.
    secretFields: secretFieldNames(
      decryptTargetSecrets(deps.keyRing, row.id, row.secretsCiphertext),
    ),
    health: row.health ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export async function listOperatorTargets(
  db: Database,
  deps: Pick<TargetServiceDeps, "registry" | "keyRing">,
): Promise<OperatorTarget[]> {
  const rows = await db
    .select()
    .from(integrationTargets)
    .orderBy(asc(integrationTargets.targetKey));
  return rows.map((row) => toOperatorTarget(row, deps));
}

export async function getOperatorTarget(
  db: Database,
  deps: Pick<TargetServiceDeps, "registry" | "keyRing">,
  targetKey: string,
): Promise<OperatorTarget> {
  const [row] = await db
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.targetKey, targetKey));
  if (!row) throw notFound("target");
  return toOperatorTarget(row, deps);
}

// ----- operator changes ------------------------------------------------------------------------

function requireDefinition(registry: IntegrationRegistry, variantId: string) {
  const definition = registry.get(variantId);
  if (!definition) {
    throw unprocessable("unknown_variant", `no integration definition "${variantId}"`, {
      variantId,
      known: registry.list().map((d) => d.variantId),
    });
  }
  return definition;
}

function validateConfig(definition: AnyIntegrationDefinition, config: Record<string, unknown>) {
  const parsed = parseTargetConfig(definition, config);
  if (!parsed.ok) {
    throw badRequest(
      "invalid_request",
      `config does not satisfy the ${definition.variantId} target config schema`,
      fieldIssuesAt("config", parsed.issues),
    );
  }
}

function validateSecrets(definition: AnyIntegrationDefinition, secrets: Record<string, string>) {
  const parsed = parseTargetSecrets(definition, secrets);
  if (!parsed.ok) {
    throw badRequest(
      "invalid_request",
      `secrets do not satisfy the ${definition.variantId} target secret schema`,
      fieldIssuesAt("secrets", parsed.issues),
    );
  }
}

export async function createTarget(
  db: Database,
  deps: TargetServiceDeps,
  actor: string,
  input: CreateTargetInput,
): Promise<OperatorTarget> {
  const definition = requireDefinition(deps.registry, input.variantId);
  validateConfig(definition, input.config);
  const secrets = input.secrets ?? {};
  validateSecrets(definition, secrets);
  const now = deps.clock.now();
  const id = newId("target", now);
  const row = await db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(integrationTargets)
      .values({
        id,
        targetKey: input.targetKey,
        familyId: definition.familyId,
        variantId: definition.variantId,
        kind: definition.kind,
        enabled: input.enabled,
        config: input.config,
        secretsCiphertext:
          Object.keys(secrets).length > 0 ? encryptTargetSecrets(deps.keyRing, id, secrets) : null,
        displayName: input.displayName ?? null,
        description: input.description ?? null,
        source: "api",
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing({ target: integrationTargets.targetKey })
      .returning();
    if (!inserted) {
      throw conflict("target_key_taken", `a target with key ${input.targetKey} already exists`, {
        targetKey: input.targetKey,
      });
    }
    await appendAudit(tx, deps.clock, {
      organizationId: null,
      actor,
      action: "target.created",
      subjectType: "target",
      subjectId: id,
      details: {
        targetKey: input.targetKey,
        variantId: definition.variantId,
        enabled: input.enabled,
        source: "api",
        secretFields: secretFieldNames(secrets),
      },
    });
    return inserted;
  });
  return toOperatorTarget(row, deps);
}

async function lockTarget(tx: Executor, targetKey: string): Promise<TargetRow> {
  const [row] = await tx
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.targetKey, targetKey))
    .for("update");
  if (!row) throw notFound("target");
  return row;
}

export async function updateTarget(
  db: Database,
  deps: TargetServiceDeps,
  actor: string,
  targetKey: string,
  input: UpdateTargetInput,
): Promise<OperatorTarget> {
  const row = await db.transaction(async (tx) => {
    const current = await lockTarget(tx, targetKey);
    const changes: Partial<TargetRow> = {};
    if (input.displayName !== undefined && input.displayName !== current.displayName)
      changes.displayName = input.displayName;
    if (input.description !== undefined && input.description !== current.description)
      changes.description = input.description;
    if (input.config !== undefined) {
      const definition = requireDefinition(deps.registry, current.variantId);
      validateConfig(definition, input.config);
      if (canonicalJson(input.config) !== canonicalJson(current.config))
        changes.config = input.config;
    }
    const changed = Object.keys(changes);
    if (changed.length === 0) return current;
    const now = deps.clock.now();
    const [updated] = await tx
      .update(integrationTargets)
      .set({ ...changes, updatedAt: now })
      .where(eq(integrationTargets.id, current.id))
      .returning();
    await appendAudit(tx, deps.clock, {
      organizationId: null,
      actor,
      action: "target.updated",
      subjectType: "target",
      subjectId: current.id,
      details: { targetKey, changed },
    });
    // Display texts do not reach gateways; config does (routes, upstreams).
    if (changes.config !== undefined)
      await publishInvalidation(tx, { type: "target.updated", targetId: current.id });
    return updated ?? current;
  });
  return toOperatorTarget(row, deps);
}

/**
 * Enabling checks that the stored config parses (a registry default such as `http-api` holds `{}`
 * until an operator configures it); both are no-ops, without audit entries, when nothing changes.
 */
export async function setTargetEnabled(
  db: Database,
  deps: TargetServiceDeps,
  actor: string,
  targetKey: string,
  enabled: boolean,
): Promise<OperatorTarget> {
  const row = await db.transaction(async (tx) => {
    const current = await lockTarget(tx, targetKey);
    if (current.enabled === enabled) return current;
    if (enabled) {
      const definition = deps.registry.get(current.variantId);
      if (!definition) {
        throw unprocessable(
          "unknown_variant",
          `this deployment has no integration definition "${current.variantId}"`,
          { variantId: current.variantId },
        );
      }
      const parsed = parseTargetConfig(definition, current.config);
      if (!parsed.ok) throw targetConfigInvalid(targetKey, parsed.issues);
    }
    const [updated] = await tx
      .update(integrationTargets)
      .set({ enabled, updatedAt: deps.clock.now() })
      .where(eq(integrationTargets.id, current.id))
      .returning();
    await appendAudit(tx, deps.clock, {
      organizationId: null,
      actor,
      action: enabled ? "target.enabled" : "target.disabled",
      subjectType: "target",
      subjectId: current.id,
      details: { targetKey },
    });
    await publishInvalidation(tx, {
      type: enabled ? "target.updated" : "target.disabled",
      targetId: current.id,
    });
    return updated ?? current;
  });
  return toOperatorTarget(row, deps);
}

/** Replaces the whole secret set (`{}` clears it). Only field names are ever returned. */
export async function replaceTargetSecrets(
  db: Database,
  deps: TargetServiceDeps,
  actor: string,
  targetKey: string,
  secrets: Record<string, string>,
): Promise<{ targetKey: string; secretFields: string[] }> {
  await db.transaction(async (tx) => {
    const current = await lockTarget(tx, targetKey);
    validateSecrets(requireDefinition(deps.registry, current.variantId), secrets);
    await tx
      .update(integrationTargets)
      .set({
        secretsCiphertext:
          Object.keys(secrets).length > 0
            ? encryptTargetSecrets(deps.keyRing, current.id, secrets)
            : null,
        updatedAt: deps.clock.now(),
      })
      .where(eq(integrationTargets.id, current.id));
    await appendAudit(tx, deps.clock, {
      organizationId: null,
      actor,
      action: "target.secrets_replaced",
      subjectType: "target",
      subjectId: current.id,
      details: { targetKey, secretFields: secretFieldNames(secrets) },
    });
    await publishInvalidation(tx, { type: "target.updated", targetId: current.id });
  });
  return { targetKey, secretFields: secretFieldNames(secrets) };
}

/** The operator's forms for a target: its config and its (write-only) secrets. */
export interface TargetForms {
  config: JsonSchemaForm;
  secrets: JsonSchemaForm;
}

/**
 * Builds each definition's target forms once, like `createDefinitionForms`: the console renders
 * the operator's config and secret forms from them.
 */
export function createTargetForms(): (definition: AnyIntegrationDefinition) => TargetForms {
  const cache = new Map<AnyIntegrationDefinition, TargetForms>();
  return (definition) => {
    let forms = cache.get(definition);
    if (!forms) {
      forms = {
        config: toJsonSchemaForm(definition.targetConfigSchema, {
          ...(definition.targetConfigForm ? { hints: definition.targetConfigForm } : {}),
        }),
        secrets: toJsonSchemaForm(definition.targetSecretSchema, {
          secret: true,
          ...(definition.targetSecretForm ? { hints: definition.targetSecretForm } : {}),
        }),
      };
      cache.set(definition, forms);
    }
    return forms;
  };
}

// ----- public (organization) view --------------------------------------------------------------

type DefinitionForms = Pick<PublicTarget, "connectionMethods" | "bindingForm">;

/**
 * Builds each definition's forms once (they depend on the definition only); create one per
 * router so the work is done at first use, never per request.
 */
export function createDefinitionForms(): (definition: AnyIntegrationDefinition) => DefinitionForms {
  const cache = new Map<AnyIntegrationDefinition, DefinitionForms>();
  const noConfig = z.strictObject({});
  return (definition) => {
    let forms = cache.get(definition);
    if (!forms) {
      forms = {
        connectionMethods: definition.connectionMethods.map((method) => ({
          id: method.id,
          label: method.label,
          kind: method.kind,
          secretFields: [...(method.secretFields ?? [])],
          configForm: toJsonSchemaForm(method.configSchema ?? noConfig, {
            ...(method.configForm ? { hints: method.configForm } : {}),
          }),
        })),
        bindingForm: toJsonSchemaForm(definition.bindingConfigSchema, {
          ...(definition.bindingForm ? { hints: definition.bindingForm } : {}),
        }),
      };
      cache.set(definition, forms);
    }
    return forms;
  };
}

/**
 * The public description of a target: definition metadata and forms only. Nothing of the
 * target's config is shown to organization users (none of it is needed to connect, and it is the
 * operator's business).
 */
function toPublicTarget(
  row: TargetRow,
  definition: AnyIntegrationDefinition,
  forms: DefinitionForms,
): PublicTarget {
  return {
    targetKey: row.targetKey,
    displayName: row.displayName ?? definition.displayName,
    description: row.description ?? definition.description,
    kind: definition.kind,
    familyId: definition.familyId,
    variantId: definition.variantId,
    logoKey: definition.logoKey,
    docsUrl: definition.docsUrl,
    ...forms,
  };
}

/** Listed targets are usable ones: enabled, with a known definition and a config that parses. */
function usableDefinition(
  row: TargetRow,
  registry: IntegrationRegistry,
): AnyIntegrationDefinition | undefined {
  if (!row.enabled) return undefined;
  const definition = registry.get(row.variantId);
  if (!definition || !parseTargetConfig(definition, row.config).ok) return undefined;
  return definition;
}

export async function listPublicTargets(
  db: Database,
  registry: IntegrationRegistry,
  formsOf: (definition: AnyIntegrationDefinition) => DefinitionForms,
): Promise<PublicTarget[]> {
  const rows = await db
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.enabled, true))
    .orderBy(asc(integrationTargets.targetKey));
  return rows.flatMap((row) => {
    const definition = usableDefinition(row, registry);
    return definition ? [toPublicTarget(row, definition, formsOf(definition))] : [];
  });
}

export async function getPublicTarget(
  db: Database,
  registry: IntegrationRegistry,
  formsOf: (definition: AnyIntegrationDefinition) => DefinitionForms,
  targetKey: string,
): Promise<PublicTarget> {
  const [row] = await db
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.targetKey, targetKey));
  const definition = row ? usableDefinition(row, registry) : undefined;
  if (!row || !definition) throw notFound("target");
  return toPublicTarget(row, definition, formsOf(definition));
}

import {
  ConfigError,
  type ConfigProblem,
  problemsFromIssues,
  type TargetConfig,
} from "@keyway/config";
import type { KeyRing } from "@keyway/crypto";
import { type Database, type Executor, integrationTargets, newId } from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type Clock,
  canonicalJson,
  type IntegrationRegistry,
} from "@keyway/integrations-core";
import { eq, sql } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import { decryptTargetSecrets, encryptTargetSecrets } from "../credentials/secret-store";
import { publishInvalidation } from "../events/invalidations";
import type { TargetRow } from "./service";
import {
  parseTargetConfig,
  parseTargetSecrets,
  secretFieldNames,
  type ZodIssue,
} from "./target-config";

/**
 * Start-up target sync (SPEC §2 Target, §6.7), run by every API replica:
 *
 * 1. Registry defaults — one target per definition with `targetKey = variantId`, source
 *    `registry`, config `{}` (stored as written; the definition's defaults apply at use time).
 *    It is enabled when `{}` satisfies the definition's target config and secret schemas, and
 *    disabled otherwise (`http-api` and `github-enterprise-server` need an operator's config).
 *    An existing row is never touched, so operator changes survive restarts.
 * 2. Config provisioning — each `[targets.<targetKey>]` of keyway.toml creates or updates its
 *    row (source becomes `config`). The file wins for what it states: variant (which can never
 *    change for an existing target), `enabled`, `config`, and `display_name` when given. An empty
 *    `secrets` table leaves stored secrets alone, so operators may keep secrets out of the file
 *    and write them with `PUT /v1/operator/targets/{targetKey}/secrets`; a non-empty one replaces
 *    the secret set. API edits to a config-managed target are allowed (an operator may need to
 *    disable one at once) but the file is applied again at the next start.
 *
 * Every entry is validated before anything is written, and a bad entry throws a `ConfigError`
 * naming `targets.<key>.<field>`, so start-up fails with the same kind of message as any other
 * config mistake. Everything runs in one transaction under an advisory lock: replicas starting
 * together serialise, and the second finds nothing left to do (no duplicate audit entries).
 */

/** Fixed key of the transaction-scoped advisory lock that serialises target syncs ("tgts"). */
const TARGET_SYNC_LOCK_KEY = 0x74677473;

export interface SyncTargetsOptions {
  registry: IntegrationRegistry;
  keyRing: KeyRing;
  clock: Clock;
  /** `config.targets` from keyway.toml, by target key. */
  configTargets: Readonly<Record<string, TargetConfig>>;
}

export interface TargetSyncResult {
  /** Target keys created in this run (defaults and provisioned). */
  created: string[];
  /** Target keys whose row this run changed. */
  updated: string[];
}

interface ProvisionedTarget {
  targetKey: string;
  definition: AnyIntegrationDefinition;
  entry: TargetConfig;
}

export async function syncTargets(
  db: Database,
  options: SyncTargetsOptions,
): Promise<TargetSyncResult> {
  const provisioned = validateConfigTargets(options.registry, options.configTargets);
  const result: TargetSyncResult = { created: [], updated: [] };
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${TARGET_SYNC_LOCK_KEY})`);
    const fromConfig = new Set(provisioned.map((p) => p.targetKey));
    for (const definition of options.registry.list()) {
      // A key the config file provisions is created by step 2 directly, with one audit entry.
      if (fromConfig.has(definition.variantId)) continue;
      if (await createRegistryDefault(tx, options, definition)) {
        result.created.push(definition.variantId);
      }
    }
    for (const target of provisioned) {
      const outcome = await applyConfigTarget(tx, options, target);
      if (outcome === "created") result.created.push(target.targetKey);
      if (outcome === "updated") result.updated.push(target.targetKey);
    }
  });
  return result;
}

/** Checks every `[targets.*]` entry against its definition; throws one error listing all problems. */
function validateConfigTargets(
  registry: IntegrationRegistry,
  configTargets: Readonly<Record<string, TargetConfig>>,
): ProvisionedTarget[] {
  const problems: ConfigProblem[] = [];
  const provisioned: ProvisionedTarget[] = [];
  const document = { targets: configTargets };
  const noEnv = () => undefined;
  const at = (targetKey: string, field: string, issues: readonly ZodIssue[]) =>
    issues.map((issue) => ({ ...issue, path: ["targets", targetKey, field, ...issue.path] }));

  for (const targetKey of Object.keys(configTargets).sort()) {
    const entry = configTargets[targetKey];
    if (!entry) continue;
    const definition = registry.get(entry.variant);
    if (!definition) {
      problems.push({
        key: `targets.${targetKey}.variant`,
        message: `unknown variant "${entry.variant}"; known: ${registry
          .list()
          .map((d) => d.variantId)
          .join(", ")}`,
      });
      continue;
    }
    const config = parseTargetConfig(definition, entry.config);
    if (!config.ok) {
      problems.push(...problemsFromIssues(at(targetKey, "config", config.issues), document, noEnv));
    }
    const secrets = parseTargetSecrets(definition, entry.secrets);
    if (!secrets.ok) {
      // `targets.*.secrets` is a secret path for problemsFromIssues: values are never quoted.
      problems.push(
        ...problemsFromIssues(at(targetKey, "secrets", secrets.issues), document, noEnv),
      );
    }
    if (config.ok && secrets.ok) provisioned.push({ targetKey, definition, entry });
  }
  if (problems.length > 0) throw new ConfigError("CONFIG_INVALID", problems);
  return provisioned;
}

async function createRegistryDefault(
  tx: Executor,
  options: SyncTargetsOptions,
  definition: AnyIntegrationDefinition,
): Promise<boolean> {
  const now = options.clock.now();
  const id = newId("target", now);
  const enabled = parseTargetConfig(definition, {}).ok && parseTargetSecrets(definition, {}).ok;
  const [inserted] = await tx
    .insert(integrationTargets)
    .values({
      id,
      targetKey: definition.variantId,
      familyId: definition.familyId,
      variantId: definition.variantId,
      kind: definition.kind,
      enabled,
      config: {},
      secretsCiphertext: null,
      source: "registry",
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoNothing({ target: integrationTargets.targetKey })
    .returning({ id: integrationTargets.id });
  if (!inserted) return false;
  await appendAudit(tx, options.clock, {
    organizationId: null,
    actor: "system:registry",
    action: "target.created",
    subjectType: "target",
    subjectId: id,
    details: { targetKey: definition.variantId, variantId: definition.variantId, enabled },
  });
  return true;
}

async function applyConfigTarget(
  tx: Executor,
  options: SyncTargetsOptions,
  { targetKey, definition, entry }: ProvisionedTarget,
): Promise<"created" | "updated" | "unchanged"> {
  const now = options.clock.now();
  const existing = await lockTargetRow(tx, targetKey);
  if (!existing) {
    const id = newId("target", now);
    const secrets = entry.secrets;
    const [inserted] = await tx
      .insert(integrationTargets)
      .values({
        id,
        targetKey,
        familyId: definition.familyId,
        variantId: definition.variantId,
        kind: definition.kind,
        enabled: entry.enabled,
        config: entry.config,
        secretsCiphertext:
          Object.keys(secrets).length > 0
            ? encryptTargetSecrets(options.keyRing, id, secrets)
            : null,
        displayName: entry.display_name ?? null,
        source: "config",
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing({ target: integrationTargets.targetKey })
      .returning({ id: integrationTargets.id });
    // Someone created the key between our read and insert (an API call): update it instead.
    if (!inserted) return applyConfigTarget(tx, options, { targetKey, definition, entry });
    await appendAudit(tx, options.clock, {
      organizationId: null,
      actor: "system:config",
      action: "target.created",
      subjectType: "target",
      subjectId: id,
      details: {
        targetKey,
        variantId: definition.variantId,
        enabled: entry.enabled,
        secretFields: secretFieldNames(secrets),
      },
    });
    return "created";
  }

  if (existing.variantId !== definition.variantId) {
    throw new ConfigError("CONFIG_INVALID", [
      {
        key: `targets.${targetKey}.variant`,
        message: `target ${targetKey} already exists with variant "${existing.variantId}"; a target's variant cannot change (choose another target key)`,
      },
    ]);
  }

  const changes: Partial<TargetRow> = {};
  if (existing.enabled !== entry.enabled) changes.enabled = entry.enabled;
  if (canonicalJson(existing.config) !== canonicalJson(entry.config)) changes.config = entry.config;
  if (entry.display_name !== undefined && existing.displayName !== entry.display_name)
    changes.displayName = entry.display_name;
  if (Object.keys(entry.secrets).length > 0) {
    const stored = decryptTargetSecrets(options.keyRing, existing.id, existing.secretsCiphertext);
    if (canonicalJson(stored) !== canonicalJson(entry.secrets)) {
      changes.secretsCiphertext = encryptTargetSecrets(options.keyRing, existing.id, entry.secrets);
    }
  }
  if (existing.source !== "config") changes.source = "config";
  const changed = Object.keys(changes).map((key) =>
    key === "secretsCiphertext" ? "secrets" : key,
  );
  if (changed.length === 0) return "unchanged";

  await tx
    .update(integrationTargets)
    .set({ ...changes, updatedAt: now })
    .where(eq(integrationTargets.id, existing.id));
  await appendAudit(tx, options.clock, {
    organizationId: null,
    actor: "system:config",
    action: "target.updated",
    subjectType: "target",
    subjectId: existing.id,
    details: { targetKey, changed: changed.sort() },
  });
  const affectsGateways =
    changes.enabled !== undefined ||
    changes.config !== undefined ||
    changes.secretsCiphertext !== undefined;
  if (affectsGateways) {
    await publishInvalidation(tx, {
      type: changes.enabled === false ? "target.disabled" : "target.updated",
      targetId: existing.id,
    });
  }
  return "updated";
}

async function lockTargetRow(tx: Executor, targetKey: string): Promise<TargetRow | undefined> {
  const [row] = await tx
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.targetKey, targetKey))
    .for("update");
  return row;
}

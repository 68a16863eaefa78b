import type { KeyRing } from "@keyway/crypto";
import {
  compiledPlans,
  type Database,
  integrationConnections,
  integrationTargets,
  newId,
  organizations,
  profileBindings,
  profileVersions,
  sandboxProfiles,
  sandboxSessions,
} from "@keyway/db";
import {
  type Clock,
  type CompiledRuntimePlan,
  compilePlanOrThrow,
  type IntegrationRegistry,
} from "@keyway/integrations-core";
import { inArray } from "drizzle-orm";
import {
  encryptTargetSecrets,
  type StoredCredential,
  writeCredentialVersion,
} from "../credentials/secret-store";

/**
 * Rows for internal-API tests and the resolve benchmark, inserted directly so they depend on
 * nothing but the schema, the secret store and the compiler: an organization, targets,
 * connections with credentials, a profile version with bindings, its compiled plan, a session.
 */

export async function seedOrganization(db: Database, clock: Clock, name = "Fixture org") {
  const id = newId("organization", clock.now());
  await db.insert(organizations).values({ id, name, createdAt: clock.now() });
  return id;
}

export interface SeededTarget {
  id: string;
  targetKey: string;
  variantId: string;
}

export async function seedTarget(
  db: Database,
  deps: { keyRing: KeyRing; registry: IntegrationRegistry; clock: Clock },
  input: {
    variantId: string;
    targetKey?: string;
    config?: Record<string, unknown>;
    secrets?: Record<string, string>;
    enabled?: boolean;
  },
): Promise<SeededTarget> {
  const definition = deps.registry.require(input.variantId);
  const id = newId("target", deps.clock.now());
  const targetKey = input.targetKey ?? `${input.variantId}-${id.slice(-8).toLowerCase()}`;
  await db.insert(integrationTargets).values({
    id,
    targetKey,
    familyId: definition.familyId,
    variantId: definition.variantId,
    kind: definition.kind,
    enabled: input.enabled ?? true,
    config: input.config ?? {},
    secretsCiphertext: input.secrets ? encryptTargetSecrets(deps.keyRing, id, input.secrets) : null,
    source: "api",
  });
  return { id, targetKey, variantId: input.variantId };
}

export interface SeededConnection {
  id: string;
  organizationId: string;
  target: SeededTarget;
  methodId: string;
  config: Record<string, unknown>;
  externalSubjectId?: string;
}

export async function seedConnection(
  db: Database,
  deps: { keyRing: KeyRing; registry: IntegrationRegistry; clock: Clock },
  input: {
    organizationId: string;
    target: SeededTarget;
    methodId: string;
    credential?: StoredCredential;
    credentialExpiresAt?: Date | null;
    config?: Record<string, unknown>;
    externalSubjectId?: string;
  },
): Promise<SeededConnection> {
  const method = deps.registry
    .require(input.target.variantId)
    .connectionMethods.find((m) => m.id === input.methodId);
  if (!method) throw new Error(`no method ${input.methodId} on ${input.target.variantId}`);
  const now = deps.clock.now();
  const id = newId("connection", now);
  const config = input.config ?? {};
  await db.transaction(async (tx) => {
    await tx.insert(integrationConnections).values({
      id,
      organizationId: input.organizationId,
      targetId: input.target.id,
      methodId: method.id,
      methodKind: method.kind,
      displayName: `${input.target.targetKey} connection`,
      status: "active",
      config,
      externalSubjectId: input.externalSubjectId ?? null,
      createdBy: "fixture",
    });
    if (input.credential) {
      await writeCredentialVersion(tx, deps.keyRing, {
        connectionId: id,
        organizationId: input.organizationId,
        credential: input.credential,
        expiresAt: input.credentialExpiresAt ?? null,
        now,
      });
    }
  });
  return {
    id,
    organizationId: input.organizationId,
    target: input.target,
    methodId: method.id,
    config,
    ...(input.externalSubjectId !== undefined
      ? { externalSubjectId: input.externalSubjectId }
      : {}),
  };
}

export interface SeededSession {
  sessionId: string;
  profileId: string;
  profileVersionId: string;
  planDigest: string;
  plan: CompiledRuntimePlan;
  bindingIds: string[];
}

/**
 * A profile version binding the given connections (in order), compiled with the real compiler,
 * its plan stored by digest, and a live session on it.
 */
export async function seedSession(
  db: Database,
  deps: { registry: IntegrationRegistry; clock: Clock },
  input: {
    organizationId: string;
    bindings: { connection: SeededConnection; config: Record<string, unknown> }[];
    tokenTtlSeconds?: number;
    lifetimeSeconds?: number;
  },
): Promise<SeededSession> {
  const now = deps.clock.now();
  const profileId = newId("profile", now);
  const profileVersionId = newId("profileVersion", now);
  const bindings = input.bindings.map((b) => {
    const definition = deps.registry.require(b.connection.target.variantId);
    return {
      id: newId("binding", now),
      kind: definition.kind,
      connectionId: b.connection.id,
      config: b.config,
    };
  });
  const { plan, digest } = compilePlanOrThrow({
    profileVersionId,
    bindings,
    connections: input.bindings.map(({ connection }) => ({
      id: connection.id,
      targetId: connection.target.id,
      methodId: connection.methodId,
      status: "active" as const,
      config: connection.config,
      ...(connection.externalSubjectId !== undefined
        ? { externalSubjectId: connection.externalSubjectId }
        : {}),
    })),
    targets: await targetInputs(db, input.bindings),
    registry: deps.registry,
  });
  const sessionId = newId("session", now);
  await db.transaction(async (tx) => {
    await tx.insert(sandboxProfiles).values({
      id: profileId,
      organizationId: input.organizationId,
      name: `profile ${profileId}`,
      latestVersion: 1,
      createdBy: "fixture",
    });
    await tx.insert(profileVersions).values({
      id: profileVersionId,
      profileId,
      organizationId: input.organizationId,
      version: 1,
      planDigest: digest,
      createdBy: "fixture",
    });
    await tx.insert(profileBindings).values(
      bindings.map((b) => ({
        id: b.id,
        profileVersionId,
        organizationId: input.organizationId,
        connectionId: b.connectionId,
        kind: b.kind,
        config: b.config,
      })),
    );
    await tx.insert(compiledPlans).values({ digest, plan }).onConflictDoNothing();
    await tx.insert(sandboxSessions).values({
      id: sessionId,
      organizationId: input.organizationId,
      profileId,
      profileVersionId,
      planDigest: digest,
      tokenExpiresAt: new Date(now.getTime() + (input.tokenTtlSeconds ?? 900) * 1000),
      expiresAt: new Date(now.getTime() + (input.lifetimeSeconds ?? 24 * 3600) * 1000),
      createdBy: "fixture",
    });
  });
  return {
    sessionId,
    profileId,
    profileVersionId,
    planDigest: digest,
    plan,
    bindingIds: bindings.map((b) => b.id),
  };
}

async function targetInputs(db: Database, bindings: { connection: SeededConnection }[]) {
  const rows = await db
    .select()
    .from(integrationTargets)
    .where(
      inArray(integrationTargets.id, [...new Set(bindings.map((b) => b.connection.target.id))]),
    );
  return rows.map((row) => ({
    id: row.id,
    targetKey: row.targetKey,
    variantId: row.variantId,
    enabled: row.enabled,
    config: row.config,
  }));
}

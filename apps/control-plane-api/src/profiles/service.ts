import {
  compiledPlans,
  type Database,
  type Executor,
  integrationConnections,
  integrationTargets,
  newId,
  profileBindings,
  profileVersions,
  sandboxProfiles,
  sandboxSessions,
} from "@keyway/db";
import {
  type BindingInput,
  type Clock,
  type CompiledRuntimePlan,
  type CompileErrorDetail,
  type CompileResult,
  type ConnectionInput,
  checkBinding,
  compareCodePoints,
  compiledPlanSchema,
  compilePlan,
  diffPlans,
  type IntegrationRegistry,
  type TargetInput,
} from "@keyway/integrations-core";
import { and, asc, count, eq, getTableColumns, gt, inArray, isNull, ne } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import { conflict, type DomainError, type FieldIssue, notFound, unprocessable } from "../errors";
import type { CreateVersionInput } from "./schemas";

/**
 * Sandbox profiles and their immutable versions (SPEC §2, §4.2, §6.2).
 *
 * - A version is written once, with its bindings and the digest of its compiled plan, in one
 *   transaction; no code path changes its bindings afterwards. Only `plan_digest` moves, to record
 *   the latest successful compile (target config may change what a version compiles to).
 * - Binding ids of a version are generated sorted in request order, so "sorted by id" (the
 *   compiler's order, and the order bindings are read back in) is the order the caller sent, and
 *   `bindings.N` in error details means the same binding at write time and at compile time.
 * - Connections are looked up only inside the caller's organization: another organization's
 *   connection is indistinguishable from one that does not exist (`connection_not_found`).
 */

type ProfileRow = typeof sandboxProfiles.$inferSelect;
type VersionRow = typeof profileVersions.$inferSelect;
type BindingRow = typeof profileBindings.$inferSelect;

export function toProfile(row: ProfileRow) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    latestVersion: row.latestVersion,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

function toVersionSummary(row: VersionRow, bindingCount: number) {
  return {
    id: row.id,
    profileId: row.profileId,
    version: row.version,
    egressPolicy: row.egressPolicy ?? null,
    planDigest: row.planDigest,
    bindingCount,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
  };
}

function toVersion(row: VersionRow, bindings: readonly BindingRow[]) {
  return {
    ...toVersionSummary(row, bindings.length),
    bindings: bindings.map((b) => ({
      id: b.id,
      connectionId: b.connectionId,
      kind: b.kind,
      config: b.config,
    })),
  };
}

const nameTaken = (name: string) =>
  conflict("profile_name_taken", `a sandbox profile named "${name}" already exists`);

// ----- profiles ----------------------------------------------------------------------------------

export async function createProfile(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  input: { name: string; description?: string | undefined },
) {
  const now = clock.now();
  const row: ProfileRow = {
    id: newId("profile", now),
    organizationId: principal.organizationId,
    name: input.name,
    description: input.description ?? null,
    latestVersion: 0,
    createdBy: principal.actor,
    createdAt: now,
    updatedAt: now,
  };
  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(sandboxProfiles)
      .values(row)
      .onConflictDoNothing({ target: [sandboxProfiles.organizationId, sandboxProfiles.name] })
      .returning({ id: sandboxProfiles.id });
    if (inserted.length === 0) throw nameTaken(input.name);
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "profile.created",
      subjectType: "sandbox_profile",
      subjectId: row.id,
      details: { name: row.name },
    });
  });
  return toProfile(row);
}

export async function listProfiles(db: Database, organizationId: string) {
  const rows = await db
    .select()
    .from(sandboxProfiles)
    .where(eq(sandboxProfiles.organizationId, organizationId))
    .orderBy(asc(sandboxProfiles.name), asc(sandboxProfiles.id));
  return rows.map(toProfile);
}

async function findProfile(
  executor: Executor,
  organizationId: string,
  id: string,
  lock?: "update" | "share",
): Promise<ProfileRow> {
  const query = executor
    .select()
    .from(sandboxProfiles)
    .where(and(eq(sandboxProfiles.id, id), eq(sandboxProfiles.organizationId, organizationId)));
  const [row] = lock ? await query.for(lock) : await query;
  if (!row) throw notFound("sandbox profile");
  return row;
}

export async function getProfile(db: Database, organizationId: string, id: string) {
  return toProfile(await findProfile(db, organizationId, id));
}

export async function updateProfile(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  id: string,
  input: { name?: string | undefined; description?: string | null | undefined },
) {
  return db.transaction(async (tx) => {
    const current = await findProfile(tx, principal.organizationId, id, "update");
    if (input.name !== undefined && input.name !== current.name) {
      // The row lock above does not cover other rows: the unique index has the final word, but
      // checking first gives the caller a 409 instead of an aborted transaction.
      const [taken] = await tx
        .select({ id: sandboxProfiles.id })
        .from(sandboxProfiles)
        .where(
          and(
            eq(sandboxProfiles.organizationId, principal.organizationId),
            eq(sandboxProfiles.name, input.name),
            ne(sandboxProfiles.id, id),
          ),
        );
      if (taken) throw nameTaken(input.name);
    }
    const now = clock.now();
    const changes = {
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      updatedAt: now,
    };
    let updated: ProfileRow | undefined;
    try {
      [updated] = await tx
        .update(sandboxProfiles)
        .set(changes)
        .where(eq(sandboxProfiles.id, id))
        .returning();
    } catch (error) {
      if (isUniqueViolation(error, "sandbox_profiles_org_name_key") && input.name !== undefined)
        throw nameTaken(input.name);
      throw error;
    }
    if (!updated) throw notFound("sandbox profile");
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "profile.updated",
      subjectType: "sandbox_profile",
      subjectId: id,
      details: { fields: Object.keys(changes).filter((k) => k !== "updatedAt") },
    });
    return toProfile(updated);
  });
}

/**
 * Deletes a profile with its versions and bindings. Refused (409 `profile_in_use`) while a live
 * session runs one of its versions: revoke those first. Sessions that already ended are removed
 * with the profile (their start and revocation stay in the audit log); compiled plans are
 * content-addressed and may be shared, so they stay.
 */
export async function deleteProfile(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  id: string,
) {
  await db.transaction(async (tx) => {
    const profile = await findProfile(tx, principal.organizationId, id, "update");
    const now = clock.now();
    const live = await tx
      .select({ id: sandboxSessions.id })
      .from(sandboxSessions)
      .where(
        and(
          eq(sandboxSessions.organizationId, principal.organizationId),
          eq(sandboxSessions.profileId, id),
          isNull(sandboxSessions.revokedAt),
          gt(sandboxSessions.expiresAt, now),
        ),
      )
      .orderBy(asc(sandboxSessions.id))
      .limit(100);
    if (live.length > 0) {
      throw conflict(
        "profile_in_use",
        "live sandbox sessions use this profile; revoke them before deleting it",
        { liveSessionIds: live.map((s) => s.id) },
      );
    }
    const ended = await tx
      .delete(sandboxSessions)
      .where(
        and(
          eq(sandboxSessions.organizationId, principal.organizationId),
          eq(sandboxSessions.profileId, id),
        ),
      )
      .returning({ id: sandboxSessions.id });
    await tx.delete(sandboxProfiles).where(eq(sandboxProfiles.id, id));
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "profile.deleted",
      subjectType: "sandbox_profile",
      subjectId: id,
      details: {
        name: profile.name,
        versions: profile.latestVersion,
        endedSessionsRemoved: ended.length,
      },
    });
  });
}

// ----- versions ----------------------------------------------------------------------------------

export interface CompileDeps {
  db: Database;
  clock: Clock;
  registry: IntegrationRegistry;
}

/**
 * Writes version N+1 of a profile. Every binding passes `checkBinding` and the whole version
 * passes `compilePlan` before anything is written, so a version that exists compiled at least
 * once; on any error nothing is written. The profile row lock serialises version numbers.
 */
export async function createProfileVersion(
  deps: CompileDeps,
  principal: OrganizationPrincipal,
  profileId: string,
  input: CreateVersionInput,
) {
  const now = deps.clock.now();
  const versionId = newId("profileVersion", now);
  // Same millisecond, random tails: sorting makes id order equal request order (see top).
  const ids = input.bindings.map(() => newId("binding", now)).sort(compareCodePoints);
  const bindings: BindingInput[] = input.bindings.map((b, i) => ({
    id: ids[i]!,
    kind: b.kind,
    connectionId: b.connectionId,
    config: b.config,
  }));
  const labels = bindingLabels(bindings);

  return deps.db.transaction(async (tx) => {
    const profile = await findProfile(tx, principal.organizationId, profileId, "update");
    const { connections, targets } = await loadCompileReferences(
      tx,
      principal.organizationId,
      bindings,
    );
    const lookups = {
      registry: deps.registry,
      connections: new Map(connections.map((c) => [c.id, c])),
      targets: new Map(targets.map((t) => [t.id, t])),
    };
    const checkErrors = bindings.flatMap((binding) => {
      const checked = checkBinding(binding, lookups);
      return checked.ok ? [] : checked.errors;
    });
    if (checkErrors.length > 0) throw compileFailure(checkErrors, labels, { persisted: false });
    const compiled = compilePlan({
      profileVersionId: versionId,
      bindings,
      connections,
      targets,
      registry: deps.registry,
      ...(input.egressPolicy ? { egressPolicy: input.egressPolicy } : {}),
    });
    if (!compiled.ok) throw compileFailure(compiled.errors, labels, { persisted: false });

    const versionRow: VersionRow = {
      id: versionId,
      profileId,
      organizationId: principal.organizationId,
      version: profile.latestVersion + 1,
      egressPolicy: input.egressPolicy ?? null,
      planDigest: compiled.digest,
      createdBy: principal.actor,
      createdAt: now,
    };
    const bindingRows: BindingRow[] = bindings.map((b, i) => ({
      id: b.id,
      profileVersionId: versionId,
      organizationId: principal.organizationId,
      connectionId: b.connectionId,
      kind: input.bindings[i]!.kind,
      config: input.bindings[i]!.config,
      createdAt: now,
    }));
    await storePlan(tx, compiled.digest, compiled.plan);
    await tx.insert(profileVersions).values(versionRow);
    if (bindingRows.length > 0) await tx.insert(profileBindings).values(bindingRows);
    await tx
      .update(sandboxProfiles)
      .set({ latestVersion: versionRow.version, updatedAt: now })
      .where(eq(sandboxProfiles.id, profileId));
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "profile.version_created",
      subjectType: "sandbox_profile",
      subjectId: profileId,
      details: {
        profileVersionId: versionId,
        version: versionRow.version,
        planDigest: compiled.digest,
        bindings: bindingRows.map((b) => ({ id: b.id, connectionId: b.connectionId })),
      },
    });
    return toVersion(versionRow, bindingRows);
  });
}

export async function listProfileVersions(db: Database, organizationId: string, profileId: string) {
  await findProfile(db, organizationId, profileId);
  const rows = await db
    .select({ ...getTableColumns(profileVersions), bindingCount: count(profileBindings.id) })
    .from(profileVersions)
    .leftJoin(profileBindings, eq(profileBindings.profileVersionId, profileVersions.id))
    .where(
      and(
        eq(profileVersions.profileId, profileId),
        eq(profileVersions.organizationId, organizationId),
      ),
    )
    .groupBy(profileVersions.id)
    .orderBy(asc(profileVersions.version));
  return rows.map(({ bindingCount, ...row }) => toVersionSummary(row, bindingCount));
}

/** The version row, scoped to the organization through its profile; 404 otherwise. */
export async function findProfileVersion(
  executor: Executor,
  organizationId: string,
  profileId: string,
  version: number,
): Promise<VersionRow> {
  await findProfile(executor, organizationId, profileId);
  const [row] = await executor
    .select()
    .from(profileVersions)
    .where(
      and(
        eq(profileVersions.profileId, profileId),
        eq(profileVersions.organizationId, organizationId),
        eq(profileVersions.version, version),
      ),
    );
  if (!row) throw notFound(`version ${version} of this sandbox profile`);
  return row;
}

async function loadBindings(executor: Executor, version: VersionRow): Promise<BindingRow[]> {
  return executor
    .select()
    .from(profileBindings)
    .where(
      and(
        eq(profileBindings.profileVersionId, version.id),
        eq(profileBindings.organizationId, version.organizationId),
      ),
    )
    .orderBy(asc(profileBindings.id));
}

export async function getProfileVersion(
  db: Database,
  organizationId: string,
  profileId: string,
  version: number,
) {
  const row = await findProfileVersion(db, organizationId, profileId, version);
  return toVersion(row, await loadBindings(db, row));
}

// ----- compile -----------------------------------------------------------------------------------

/** The connections (this organization's only) and targets the bindings refer to. */
async function loadCompileReferences(
  executor: Executor,
  organizationId: string,
  bindings: readonly BindingInput[],
): Promise<{ connections: ConnectionInput[]; targets: TargetInput[] }> {
  const connectionIds = [...new Set(bindings.map((b) => b.connectionId))];
  if (connectionIds.length === 0) return { connections: [], targets: [] };
  const connectionRows = await executor
    .select()
    .from(integrationConnections)
    .where(
      and(
        inArray(integrationConnections.id, connectionIds),
        eq(integrationConnections.organizationId, organizationId),
      ),
    );
  const targetIds = [...new Set(connectionRows.map((c) => c.targetId))];
  const targetRows =
    targetIds.length === 0
      ? []
      : await executor
          .select({
            id: integrationTargets.id,
            targetKey: integrationTargets.targetKey,
            variantId: integrationTargets.variantId,
            enabled: integrationTargets.enabled,
            config: integrationTargets.config,
          })
          .from(integrationTargets)
          .where(inArray(integrationTargets.id, targetIds));
  return {
    connections: connectionRows.map((c) => ({
      id: c.id,
      targetId: c.targetId,
      methodId: c.methodId,
      status: c.status,
      config: c.config,
      ...(c.externalSubjectId !== null ? { externalSubjectId: c.externalSubjectId } : {}),
    })),
    targets: targetRows,
  };
}

/** Compiles a stored version from its bindings and the current connection and target state. */
async function compileVersionRow(
  executor: Executor,
  registry: IntegrationRegistry,
  version: VersionRow,
): Promise<{ result: CompileResult; bindings: BindingInput[] }> {
  const bindings: BindingInput[] = (await loadBindings(executor, version)).map((b) => ({
    id: b.id,
    kind: b.kind,
    connectionId: b.connectionId,
    config: b.config,
  }));
  const references = await loadCompileReferences(executor, version.organizationId, bindings);
  const result = compilePlan({
    profileVersionId: version.id,
    bindings,
    ...references,
    registry,
    ...(version.egressPolicy ? { egressPolicy: version.egressPolicy } : {}),
  });
  return { result, bindings };
}

/** Stores a plan by digest; plans are content-addressed, so an existing row is already right. */
export async function storePlan(
  executor: Executor,
  digest: string,
  plan: CompiledRuntimePlan,
): Promise<void> {
  const [existing] = await executor
    .select({ digest: compiledPlans.digest })
    .from(compiledPlans)
    .where(eq(compiledPlans.digest, digest));
  if (existing) return;
  await executor.insert(compiledPlans).values({ digest, plan }).onConflictDoNothing();
}

export interface CompiledVersion {
  version: VersionRow;
  digest: string;
  plan: CompiledRuntimePlan;
}

/**
 * Compiles a stored version (422 with codes when it no longer compiles, e.g. its target was
 * disabled), stores the plan by digest and records the digest on the version. Runs inside the
 * caller's transaction when given one.
 */
export async function compileStoredVersion(
  executor: Executor,
  registry: IntegrationRegistry,
  version: VersionRow,
): Promise<CompiledVersion> {
  const { result, bindings } = await compileVersionRow(executor, registry, version);
  if (!result.ok) {
    throw compileFailure(result.errors, bindingLabels(bindings), {
      persisted: true,
      version: version.version,
    });
  }
  const record = async (tx: Executor) => {
    await storePlan(tx, result.digest, result.plan);
    if (version.planDigest !== result.digest) {
      await tx
        .update(profileVersions)
        .set({ planDigest: result.digest })
        .where(eq(profileVersions.id, version.id));
    }
  };
  if ("rollback" in executor) await record(executor);
  else await (executor as Database).transaction(record);
  return {
    version: { ...version, planDigest: result.digest },
    digest: result.digest,
    plan: result.plan,
  };
}

export async function compileProfileVersion(
  db: Database,
  registry: IntegrationRegistry,
  organizationId: string,
  profileId: string,
  version: number,
) {
  const row = await findProfileVersion(db, organizationId, profileId, version);
  const compiled = await compileStoredVersion(db, registry, row);
  return { digest: compiled.digest, plan: compiled.plan };
}

/** What changes when sessions move from version `against` to version `version`. */
export async function diffProfileVersions(
  db: Database,
  registry: IntegrationRegistry,
  organizationId: string,
  profileId: string,
  version: number,
  against: number,
) {
  const toRow = await findProfileVersion(db, organizationId, profileId, version);
  const fromRow = await findProfileVersion(db, organizationId, profileId, against);
  const from = await compileStoredVersion(db, registry, fromRow);
  const to = await compileStoredVersion(db, registry, toRow);
  return {
    from: { version: against, digest: from.digest },
    to: { version, digest: to.digest },
    diff: diffPlans(from.plan, to.plan),
  };
}

/**
 * A stored plan by digest, validated against the plan schema; undefined when unknown. For the
 * internal API (gateways load plans by digest, credential resolution reads the session's plan).
 */
export async function loadPlan(
  executor: Executor,
  digest: string,
): Promise<CompiledRuntimePlan | undefined> {
  const [row] = await executor
    .select({ plan: compiledPlans.plan })
    .from(compiledPlans)
    .where(eq(compiledPlans.digest, digest));
  if (!row) return undefined;
  return compiledPlanSchema.parse(row.plan);
}

// ----- compile errors → 422 ----------------------------------------------------------------------

/** `bindings.N` for each binding id, N being its index in the request (= id order). */
function bindingLabels(bindings: readonly BindingInput[]): Map<string, string> {
  return new Map(
    [...bindings]
      .sort((a, b) => compareCodePoints(a.id, b.id))
      .map((b, i) => [b.id, `bindings.${i}`]),
  );
}

const CONFIG_CODES = new Set(["invalid_binding_config", "binding_validation_failed"]);
const CONNECTION_FIELD_CODES = new Set([
  "connection_not_found",
  "target_not_found",
  "unknown_definition",
  "target_disabled",
  "connection_not_active",
  "unknown_connection_method",
  "invalid_target_config",
  "invalid_connection_config",
  "target_mismatch",
]);

/**
 * The 422 for compile errors: `code` is the first error's code; `details.errors` lists every
 * error with the bindings involved as `bindings.N` (request indexes), and `details.issues` the
 * field-level view (`bindings.N.config.<field>`, `bindings.N.connectionId`, ...). Before a version
 * is written its binding ids mean nothing to the caller, so they are replaced by `bindings.N` in
 * messages; for stored versions the ids are kept and listed.
 */
function compileFailure(
  errors: readonly CompileErrorDetail[],
  labels: ReadonlyMap<string, string>,
  context: { persisted: boolean; version?: number },
): DomainError {
  const relabel = (text: string) => {
    if (context.persisted) return text;
    let out = text;
    for (const [id, label] of labels) out = out.replaceAll(id, label);
    return out;
  };
  const issues: FieldIssue[] = [];
  const details = errors.map((error) => {
    const bindings = error.bindingIds.map((id) => labels.get(id) ?? id);
    const first = bindings[0] ?? "";
    if (CONFIG_CODES.has(error.code)) {
      for (const issue of error.issues ?? [{ field: "", code: error.code, message: error.message }])
        issues.push({
          field: [first, "config", issue.field].filter((s) => s !== "").join("."),
          code: issue.code,
          message: relabel(issue.message),
        });
    } else if (error.code === "kind_mismatch") {
      issues.push({ field: `${first}.kind`, code: error.code, message: relabel(error.message) });
    } else if (CONNECTION_FIELD_CODES.has(error.code)) {
      issues.push({
        field: `${first}.connectionId`,
        code: error.code,
        message: relabel(error.message),
      });
    } else {
      for (const label of bindings)
        issues.push({ field: label, code: error.code, message: relabel(error.message) });
    }
    return {
      code: error.code,
      category: error.category,
      message: relabel(error.message),
      bindings,
      ...(context.persisted ? { bindingIds: error.bindingIds } : {}),
      ...(error.issues
        ? {
            issues: error.issues.map((i) => ({
              field: i.field,
              code: i.code,
              message: relabel(i.message),
            })),
          }
        : {}),
    };
  });
  const first = details[0];
  const more = details.length > 1 ? ` (+${details.length - 1} more)` : "";
  const prefix = context.version !== undefined ? `version ${context.version}: ` : "";
  return unprocessable(
    first?.code ?? "invalid_compile_output",
    `${prefix}${first?.message ?? "the profile version does not compile"}${more}`,
    {
      errors: details,
      issues,
      ...(context.version !== undefined ? { version: context.version } : {}),
    },
  );
}

/** True when `error` (or a cause) is PostgreSQL's unique violation on `constraint`. */
function isUniqueViolation(error: unknown, constraint: string): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const pg = e as Error & { code?: unknown; constraint_name?: unknown };
    if (pg.code === "23505" && pg.constraint_name === constraint) return true;
  }
  return false;
}

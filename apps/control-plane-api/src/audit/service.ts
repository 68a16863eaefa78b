import type { KeyRing } from "@keyway/crypto";
import {
  auditCheckpoints,
  auditLog,
  auditSeals,
  type Database,
  type Executor,
  executePrepared,
  newId,
} from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { and, asc, count, desc, eq, gt, notExists, sql } from "drizzle-orm";
import {
  auditEntryHash,
  chainOf,
  checkpointSignatureHolds,
  GENESIS_HASH,
  sealedContent,
} from "./chain";

export interface AuditEntryInput {
  organizationId: string | null;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  traceId?: string | null;
  /** Non-secret facts only: ids, codes, names. */
  details?: Record<string, unknown>;
}

type AuditRow = typeof auditLog.$inferSelect;

/** An entry as listed: its place in its chain once sealed, null before. */
export type ListedAuditRow = AuditRow & { chainSeq: number | null; hash: string | null };

/**
 * Records one entry: a plain insert through `executor`, so inside the caller's transaction it
 * commits (or not) with the change it records. It takes no lock and waits for no other writer:
 * the entry has no chain position until the sealer (sealer.ts) links it (a row of
 * `audit_seals`), shortly after it commits.
 */
export async function appendAudit(
  executor: Executor,
  clock: Clock,
  entry: AuditEntryInput,
): Promise<void> {
  await appendAuditEntries(executor, clock, [entry]);
}

/** Several entries in one insert (a batch of webhook ingests), as `appendAudit` records one. */
export async function appendAuditEntries(
  executor: Executor,
  clock: Clock,
  entries: readonly AuditEntryInput[],
): Promise<void> {
  if (entries.length === 0) return;
  const createdAt = clock.now();
  await insertAuditEntries(
    executor,
    entries.map((entry) => ({ entry, createdAt })),
  );
}

function auditRow(entry: AuditEntryInput, createdAt: Date) {
  return {
    id: newId("audit", createdAt),
    organizationId: entry.organizationId,
    actor: entry.actor,
    action: entry.action,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId,
    traceId: entry.traceId ?? null,
    details: entry.details ?? {},
    createdAt,
  };
}

/** An entry and the instant it was recorded (taken when the caller appended it, not at insert). */
export interface TimedAuditEntry {
  entry: AuditEntryInput;
  createdAt: Date;
}

/**
 * Records several entries in one statement, so one transaction and one commit (synchronous:
 * durable when this resolves). Plain inserts like `appendAudit`'s, linked later by the sealer.
 * Callers batch concurrent appends through it (`createStatementBatcher`).
 */
export async function insertAuditEntries(
  executor: Executor,
  entries: readonly TimedAuditEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  const rows = entries.map(({ entry, createdAt }, position) => {
    const row = auditRow(entry, createdAt);
    return {
      position,
      id: row.id,
      organization_id: row.organizationId,
      actor: row.actor,
      action: row.action,
      subject_type: row.subjectType,
      subject_id: row.subjectId,
      trace_id: row.traceId,
      details: row.details,
      created_at: row.createdAt.toISOString(),
    };
  });
  // The entries travel as one JSON parameter: one statement text (prepared once per
  // connection) whatever their number, and no per-value query building or binding (a batch of
  // webhook events' entries was ≈ 400 bound values through drizzle's multi-row insert).
  await executePrepared(
    executor,
    sql`
    insert into audit_log
      (id, organization_id, actor, action, subject_type, subject_id, trace_id, details, created_at)
    select id, organization_id, actor, action, subject_type, subject_id, trace_id, details,
      created_at
    from json_to_recordset(${JSON.stringify(rows)}::json) as entry(position int, id text,
      organization_id text, actor text, action text, subject_type text, subject_id text,
      trace_id text, details jsonb, created_at timestamptz)
    order by position`,
  );
}

export type AuditProblem =
  | "hash_mismatch"
  | "broken_link"
  | "checkpoint_head_missing"
  | "checkpoint_invalid";

export interface AuditVerification {
  ok: boolean;
  /** Sealed entries (in scope) checked before the first problem, or all of them. */
  checkedEntries: number;
  /** Entries (in scope) not sealed yet: recorded, not yet linked, so not checked. */
  unsealedEntries: number;
  /**
   * The first problem: an entry whose hash or link does not hold (`seq`, `id`), or a checkpoint
   * that is not validly signed or whose head entry is gone or changed (`chainSeq` it names).
   */
  firstInvalid?: {
    reason: AuditProblem;
    chainSeq: number;
    seq?: number;
    id?: string;
  };
}

/**
 * Verifies chains entry by entry in `chain_seq` order, in pages: each sealed entry's stored hash
 * must match its content and position, and its `prev_hash` the hash of the entry before it, so a
 * changed or removed entry is found. Each checkpoint of the chain must be validly signed and name
 * an entry still present with the hash it signed, so removing the newest entries (which leaves a
 * shorter chain that still links) is found too, back to the newest checkpoint.
 *
 * With `organizationId`: that organization's chain only (its admins; they learn nothing of other
 * organizations). Without: every chain (operators, `keyway audit verify`), stopping at the first
 * problem.
 */
export async function verifyAuditChain(
  db: Database,
  keyRing: KeyRing,
  options: { organizationId?: string; pageSize?: number } = {},
): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 1000;
  const chains =
    options.organizationId !== undefined
      ? [chainOf(options.organizationId)]
      : (
          await db.execute<{ chain: string }>(sql`
            select distinct chain from audit_seals
            union select chain from audit_checkpoints order by chain`)
        ).map((row) => row.chain);
  const notSealed = notExists(
    db.select({ seq: auditSeals.seq }).from(auditSeals).where(eq(auditSeals.seq, auditLog.seq)),
  );
  const [unsealed] = await db
    .select({ n: count() })
    .from(auditLog)
    .where(
      options.organizationId !== undefined
        ? and(notSealed, eq(auditLog.organizationId, options.organizationId))
        : notSealed,
    );
  const unsealedEntries = unsealed?.n ?? 0;
  let checkedEntries = 0;
  for (const chain of chains) {
    const result = await verifyChain(db, keyRing, chain, pageSize);
    checkedEntries += result.checked;
    if (result.problem !== undefined) {
      return { ok: false, checkedEntries, unsealedEntries, firstInvalid: result.problem };
    }
  }
  return { ok: true, checkedEntries, unsealedEntries };
}

async function verifyChain(
  db: Database,
  keyRing: KeyRing,
  chain: string,
  pageSize: number,
): Promise<{ checked: number; problem?: AuditVerification["firstInvalid"] }> {
  // Checkpoints are read first: every entry one names was sealed before it was written, so the
  // walk below sees it unless it was removed.
  const checkpoints = await db
    .select()
    .from(auditCheckpoints)
    .where(eq(auditCheckpoints.chain, chain))
    .orderBy(asc(auditCheckpoints.chainSeq), asc(auditCheckpoints.id));
  for (const checkpoint of checkpoints) {
    if (!checkpointSignatureHolds(keyRing, checkpoint)) {
      return {
        checked: 0,
        problem: { reason: "checkpoint_invalid", chainSeq: checkpoint.chainSeq },
      };
    }
  }
  let nextCheckpoint = 0;
  let previous = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  for (;;) {
    // The chain's links in order, each with its entry (none when the entry was removed).
    const rows = await db
      .select({ seal: auditSeals, entry: auditLog })
      .from(auditSeals)
      .leftJoin(auditLog, eq(auditLog.seq, auditSeals.seq))
      .where(and(eq(auditSeals.chain, chain), gt(auditSeals.chainSeq, expectedSeq - 1)))
      .orderBy(asc(auditSeals.chainSeq))
      .limit(pageSize);
    for (const { seal, entry } of rows) {
      const problem = (reason: AuditProblem) => ({
        checked,
        problem: {
          reason,
          chainSeq: seal.chainSeq,
          seq: seal.seq,
          ...(entry !== null ? { id: entry.id } : {}),
        },
      });
      // A missing entry shows as the link of the next one (its prev_hash names the missing
      // hash), or, when only the entry was removed and its link kept, as that link itself.
      if (entry === null || seal.prevHash !== previous) return problem("broken_link");
      const content = sealedContent(entry, seal);
      if (auditEntryHash(content) !== seal.hash || seal.chainSeq !== expectedSeq) {
        return problem("hash_mismatch");
      }
      while (checkpoints[nextCheckpoint]?.chainSeq === seal.chainSeq) {
        // The entry a checkpoint signed was replaced (removed, and the chain sealed on).
        if (checkpoints[nextCheckpoint]?.hash !== seal.hash) {
          return problem("checkpoint_head_missing");
        }
        nextCheckpoint++;
      }
      checked++;
      previous = seal.hash;
      expectedSeq++;
    }
    if (rows.length < pageSize) break;
  }
  const unmatched = checkpoints[nextCheckpoint];
  if (unmatched !== undefined) {
    // A checkpoint names an entry past the end of the chain: the newest entries were removed.
    return {
      checked,
      problem: { reason: "checkpoint_head_missing", chainSeq: unmatched.chainSeq },
    };
  }
  return { checked };
}

/**
 * Entries newest first: one organization's, or (organizationId undefined: operators) every entry
 * of the deployment, organizations' and deployment-wide ones alike.
 */
export async function listAudit(
  db: Database,
  organizationId: string | undefined,
  options: { limit: number; beforeSeq?: number },
): Promise<ListedAuditRow[]> {
  const scope =
    organizationId !== undefined ? eq(auditLog.organizationId, organizationId) : undefined;
  const older =
    options.beforeSeq !== undefined ? sql`${auditLog.seq} < ${options.beforeSeq}` : undefined;
  const rows = await db
    .select({ entry: auditLog, chainSeq: auditSeals.chainSeq, hash: auditSeals.hash })
    .from(auditLog)
    .leftJoin(auditSeals, eq(auditSeals.seq, auditLog.seq))
    .where(and(scope, older))
    .orderBy(desc(auditLog.seq))
    .limit(options.limit);
  return rows.map(({ entry, chainSeq, hash }) => ({ ...entry, chainSeq, hash }));
}

import { createHash } from "node:crypto";
import { auditLog, type Database, type Executor, newId } from "@keyway/db";
import { type Clock, canonicalJson } from "@keyway/integrations-core";
import { and, asc, desc, eq, gt, sql } from "drizzle-orm";

/** Fixed key of the transaction-scoped advisory lock that serialises audit appends. */
const AUDIT_LOCK_KEY = 0x61756474;
const GENESIS_HASH = "0".repeat(64);

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

/** The hash of an entry covers every column except `seq` and `hash` itself, and the previous hash. */
export function auditEntryHash(row: Omit<AuditRow, "seq" | "hash">): string {
  const content = canonicalJson({
    id: row.id,
    organizationId: row.organizationId,
    actor: row.actor,
    action: row.action,
    subjectType: row.subjectType,
    subjectId: row.subjectId,
    traceId: row.traceId,
    details: row.details,
    createdAt: row.createdAt.toISOString(),
    prevHash: row.prevHash,
  });
  return createHash("sha256").update(content).digest("hex");
}

/**
 * Appends one entry to the hash chain. Runs inside the caller's transaction when given one, so
 * the entry commits (or not) with the change it records; the advisory lock keeps the chain linear
 * across concurrent writers and replicas.
 */
export async function appendAudit(
  executor: Executor,
  clock: Clock,
  entry: AuditEntryInput,
): Promise<void> {
  const write = async (tx: Executor) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const [last] = await tx
      .select({ hash: auditLog.hash })
      .from(auditLog)
      .orderBy(desc(auditLog.seq))
      .limit(1);
    const createdAt = clock.now();
    const row = {
      id: newId("audit", createdAt),
      organizationId: entry.organizationId,
      actor: entry.actor,
      action: entry.action,
      subjectType: entry.subjectType,
      subjectId: entry.subjectId,
      traceId: entry.traceId ?? null,
      details: entry.details ?? {},
      createdAt,
      prevHash: last?.hash ?? GENESIS_HASH,
    };
    await tx.insert(auditLog).values({ ...row, hash: auditEntryHash(row) });
  };
  if ("rollback" in executor) return write(executor);
  await (executor as Database).transaction(write);
}

export interface AuditVerification {
  ok: boolean;
  checkedEntries: number;
  /** First entry whose hash or link does not hold. */
  firstInvalid?: { seq: number; id: string; reason: "hash_mismatch" | "broken_link" };
}

/** Walks the whole chain in order, in pages, recomputing every hash. */
export async function verifyAuditChain(db: Database, pageSize = 1000): Promise<AuditVerification> {
  let previous = GENESIS_HASH;
  let afterSeq = 0;
  let checked = 0;
  for (;;) {
    const rows = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, afterSeq))
      .orderBy(asc(auditLog.seq))
      .limit(pageSize);
    if (rows.length === 0) return { ok: true, checkedEntries: checked };
    for (const row of rows) {
      if (row.prevHash !== previous) {
        return {
          ok: false,
          checkedEntries: checked,
          firstInvalid: { seq: row.seq, id: row.id, reason: "broken_link" },
        };
      }
      if (auditEntryHash(row) !== row.hash) {
        return {
          ok: false,
          checkedEntries: checked,
          firstInvalid: { seq: row.seq, id: row.id, reason: "hash_mismatch" },
        };
      }
      previous = row.hash;
      afterSeq = row.seq;
      checked++;
    }
  }
}

export async function listAudit(
  db: Database,
  organizationId: string,
  options: { limit: number; beforeSeq?: number },
): Promise<AuditRow[]> {
  const scope = eq(auditLog.organizationId, organizationId);
  return db
    .select()
    .from(auditLog)
    .where(
      options.beforeSeq !== undefined
        ? and(scope, sql`${auditLog.seq} < ${options.beforeSeq}`)
        : scope,
    )
    .orderBy(desc(auditLog.seq))
    .limit(options.limit);
}

/** Organization of an entry, to decide who may see which entry failed verification. */
export async function auditEntryOrganization(
  db: Database,
  seq: number,
): Promise<string | null | undefined> {
  const [row] = await db
    .select({ organizationId: auditLog.organizationId })
    .from(auditLog)
    .where(eq(auditLog.seq, seq))
    .limit(1);
  return row?.organizationId;
}

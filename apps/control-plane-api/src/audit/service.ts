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
  await appendAuditEntries(executor, clock, [entry]);
}

/**
 * Appends entries to the hash chain in the order given, each linked to the one before, under one
 * acquisition of the lock and in one statement. The lock is held until the transaction ends,
 * commit included, so every append waits for the one before to be durable: one transaction
 * appending many entries (webhook ingest's group commit) pays that wait once, not per entry.
 * Rows of one multi-row insert take their `seq` in the order of its values list.
 */
export async function appendAuditEntries(
  executor: Executor,
  clock: Clock,
  entries: readonly AuditEntryInput[],
): Promise<void> {
  if (entries.length === 0) return;
  const write = async (tx: Executor) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`);
    const [last] = await tx
      .select({ hash: auditLog.hash })
      .from(auditLog)
      .orderBy(desc(auditLog.seq))
      .limit(1);
    const createdAt = clock.now();
    let prevHash = last?.hash ?? GENESIS_HASH;
    const rows = entries.map((entry) => {
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
        prevHash,
      };
      const hash = auditEntryHash(row);
      prevHash = hash;
      return { ...row, hash };
    });
    await tx.insert(auditLog).values(rows);
  };
  if ("rollback" in executor) return write(executor);
  await (executor as Database).transaction(write);
}

export interface AuditVerification {
  ok: boolean;
  /** Entries checked (in scope) before the first invalid one, or all of them. */
  checkedEntries: number;
  /** First entry (in scope) whose hash or link does not hold. */
  firstInvalid?: { seq: number; id: string; reason: "hash_mismatch" | "broken_link" };
}

/**
 * Walks the chain in order, in pages, recomputing every hash and checking every link.
 *
 * Without `organizationId`: the whole chain (operators, `keyway audit verify`), stopping at its
 * first invalid entry. With one: the same walk — an entry's link is to whatever entry preceded
 * it, of any organization — but only that organization's entries count and can fail, so an
 * organization learns about its own entries and nothing of the others (not even how many there
 * are). Each entry is judged on its own: its stored hash must match its content, and its
 * `prevHash` the stored hash of the entry before it. A removed entry breaks the link of the next.
 */
export async function verifyAuditChain(
  db: Database,
  options: { organizationId?: string; pageSize?: number } = {},
): Promise<AuditVerification> {
  const pageSize = options.pageSize ?? 1000;
  const inScope = (row: AuditRow) =>
    options.organizationId === undefined || row.organizationId === options.organizationId;
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
      const reason =
        row.prevHash !== previous
          ? "broken_link"
          : auditEntryHash(row) !== row.hash
            ? "hash_mismatch"
            : undefined;
      if (inScope(row)) {
        if (reason !== undefined) {
          return {
            ok: false,
            checkedEntries: checked,
            firstInvalid: { seq: row.seq, id: row.id, reason },
          };
        }
        checked++;
      }
      previous = row.hash;
      afterSeq = row.seq;
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

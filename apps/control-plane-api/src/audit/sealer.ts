import type { KeyRing } from "@keyway/crypto";
import {
  type AuditSealGap,
  auditCheckpoints,
  auditLog,
  auditSeals,
  type Database,
  databaseFailureCause,
  executePrepared,
  isDatabaseUnavailable,
} from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { and, asc, between, eq, gt, notExists, or, sql } from "drizzle-orm";
import type { Logger } from "../logger";
import { auditEntryHash, chainOf, GENESIS_HASH, signCheckpoint } from "./chain";

/**
 * The sealer links committed, unsealed audit entries into their chains (SPEC §6.6): it gives each
 * its `chain`, `chain_seq`, `prev_hash` and `hash`, in insertion order, a batch per transaction,
 * by inserting a row into `audit_seals` (the entries are never updated).
 *
 * It finds the entries to seal without an "unsealed" index: `audit_seal_progress` holds the
 * highest `seq` it has read and the `gaps` below it (seq values it did not see committed: an open
 * transaction's entries, or a rolled-back one's). A pass reads the gaps and what lies past the
 * top, so never an entry already sealed. A gap is dropped once PostgreSQL's snapshot shows every
 * transaction that could still commit into it as ended (see `nextProgress`).
 * Appending an entry is a plain insert in the auditing transaction (`appendAudit`), so concurrent
 * writers never wait for each other's commit; only the sealer is serialised, by a transaction-scoped
 * advisory lock: every API replica runs one, and one at a time does the work.
 *
 * Every `checkpointIntervalMs`, the sealer signs the head it last sealed of each chain it extended
 * (`audit_checkpoints`). The head is the one it computed, not one read back, so entries removed
 * after sealing cannot be signed over. Entries newer than the newest checkpoint are protected by
 * their links only: removing them all is detectable once the next checkpoint is written.
 * Each chain keeps its newest `CHECKPOINTS_KEPT` checkpoints: a checkpoint's hash commits to every
 * entry before it, so the newest one that holds proves the whole prefix, and older ones only add
 * rows for `verify` to read (one every 5 s per active organization would be ~17,000 a day).
 */
export interface AuditSealer {
  /**
   * Seals every entry committed before the call (waiting for another replica's pass if one
   * runs), and checkpoints the chains extended since the last checkpoint when `checkpoint`.
   */
  sealNow(options?: { checkpoint?: boolean }): Promise<void>;
  /** Stops the timer and seals and checkpoints once more (best effort: the database may be gone). */
  close(): Promise<void>;
}

export interface AuditSealerOptions {
  db: Database;
  keyRing: KeyRing;
  clock: Clock;
  logger: Logger;
  /** How often to look for unsealed entries; undefined: only when `sealNow` is called. */
  intervalMs?: number;
  checkpointIntervalMs?: number;
  batchSize?: number;
}

/** Fixed key of the advisory lock that lets one sealer at a time work, across replicas. */
const SEALER_LOCK_KEY = 0x61756473;
export const DEFAULT_SEAL_INTERVAL_MS = 200;
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 5_000;
const DEFAULT_BATCH_SIZE = 2_000;
/** Checkpoints kept per chain (about a minute of a busy chain's at the default interval). */
export const CHECKPOINTS_KEPT = 12;

interface Head {
  chainSeq: number;
  hash: string;
}

export function createAuditSealer(options: AuditSealerOptions): AuditSealer {
  const { db, keyRing, clock, logger } = options;
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
  /** Heads this sealer sealed and has not checkpointed yet. */
  const unsigned = new Map<string, Head>();
  let lastCheckpointAt = Date.now();
  /** Passes run one after another within the process (the lock orders them across processes). */
  let queue: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  /** One batch. Returns how many entries it sealed, or undefined when another sealer held the lock. */
  async function sealBatch(wait: boolean): Promise<number | undefined> {
    const sealed = new Map<string, Head>();
    const count = await db.transaction(async (tx) => {
      // The pass's own statements are prepared where their text is fixed (one round trip each,
      // no parse and plan in PostgreSQL): a sandbox storm has the sealer run every interval.
      if (wait) {
        await executePrepared(tx, sql`select pg_advisory_xact_lock(${SEALER_LOCK_KEY})`);
      } else {
        const [row] = await executePrepared<{ locked: boolean }>(
          tx,
          sql`select pg_try_advisory_xact_lock(${SEALER_LOCK_KEY}) as locked`,
        );
        if (row?.locked !== true) return undefined;
      }
      // Where the sealer stands, and this moment's snapshot, taken BEFORE the entries are read
      // (each later statement sees at least what it saw): a transaction this snapshot shows as
      // ended has its entries visible to the reads below, or never will.
      const [state] = await executePrepared<{
        xmin: string;
        xmax: string;
        now_ms: number;
        top_seq: string | null;
        gaps: string | null;
      }>(
        tx,
        sql`
        select pg_snapshot_xmin(s)::text as xmin, pg_snapshot_xmax(s)::text as xmax,
          (extract(epoch from clock_timestamp()) * 1000)::float8 as now_ms,
          p.top_seq, p.gaps::text as gaps
        from pg_current_snapshot() as s
        left join audit_seal_progress as p on p.id = 1`,
      );
      if (state === undefined) throw new Error("audit sealer: no snapshot row");
      const top = Number(state.top_seq ?? 0);
      const gaps: AuditSealGap[] = state.gaps === null ? [] : JSON.parse(state.gaps);
      // Entries committed into the gaps (open transactions' entries when they were seen), then
      // new entries past the top: never an entry already sealed.
      const gapRows =
        gaps.length === 0
          ? []
          : await tx
              .select()
              .from(auditLog)
              .where(
                and(
                  or(...gaps.map(([from, to]) => between(auditLog.seq, from, to))),
                  // A merged gap (see `nextProgress`) can span sealed entries: never twice.
                  notExists(
                    tx
                      .select({ seq: auditSeals.seq })
                      .from(auditSeals)
                      .where(eq(auditSeals.seq, auditLog.seq)),
                  ),
                ),
              )
              .orderBy(asc(auditLog.seq))
              .limit(batchSize);
      const newRows =
        gapRows.length < batchSize
          ? await tx
              .select()
              .from(auditLog)
              .where(gt(auditLog.seq, top))
              .orderBy(asc(auditLog.seq))
              .limit(batchSize - gapRows.length)
          : [];
      const rows = [...gapRows, ...newRows];
      const next = nextProgress({
        top,
        gaps,
        sealedInGaps: gapRows.map((row) => row.seq),
        gapsReadWhole: gapRows.length < batchSize,
        newSeqs: newRows.map((row) => row.seq),
        snapshot: { xmin: BigInt(state.xmin), xmax: state.xmax, nowMs: state.now_ms },
      });
      if (next.changed) {
        await executePrepared(
          tx,
          sql`
          insert into audit_seal_progress (id, top_seq, gaps)
          values (1, ${next.top}, ${JSON.stringify(next.gaps)}::jsonb)
          on conflict (id) do update set top_seq = excluded.top_seq, gaps = excluded.gaps`,
        );
      }
      if (rows.length === 0) return 0;
      const chains = [...new Set(rows.map((row) => chainOf(row.organizationId)))];
      // Each chain's head through its (chain, chain_seq) index, one probe per chain.
      const heads = await executePrepared<{
        chain: string;
        chain_seq: string | null;
        hash: string;
      }>(
        tx,
        sql`
        select c.chain, h.chain_seq, h.hash
        from jsonb_array_elements_text(${JSON.stringify(chains)}::jsonb) as c(chain)
        left join lateral (
          select chain_seq, hash from audit_seals
          where audit_seals.chain = c.chain
          order by chain_seq desc limit 1
        ) h on true`,
      );
      const current = new Map<string, Head>();
      for (const head of heads) {
        if (head.chain_seq !== null) {
          current.set(head.chain, { chainSeq: Number(head.chain_seq), hash: head.hash });
        }
      }
      const links = rows.map((row) => {
        const chain = chainOf(row.organizationId);
        const previous = current.get(chain) ?? { chainSeq: 0, hash: GENESIS_HASH };
        const chainSeq = previous.chainSeq + 1;
        const hash = auditEntryHash({ ...row, chain, chainSeq, prevHash: previous.hash });
        current.set(chain, { chainSeq, hash });
        return { seq: row.seq, chain, chain_seq: chainSeq, prev_hash: previous.hash, hash };
      });
      // Insert-only: the entries themselves are not touched (no new row versions, no index
      // updates, no dead tuples in the busy audit_log).
      await executePrepared(
        tx,
        sql`
        insert into audit_seals (seq, chain, chain_seq, prev_hash, hash)
        select seq, chain, chain_seq, prev_hash, hash
        from json_to_recordset(${JSON.stringify(links)}::json)
          as v(seq bigint, chain text, chain_seq bigint, prev_hash text, hash text)`,
      );
      // Every chain read above was extended by at least one entry of this batch.
      for (const [chain, head] of current) sealed.set(chain, head);
      return rows.length;
    });
    for (const [chain, head] of sealed) unsigned.set(chain, head);
    return count;
  }

  async function writeCheckpoints(): Promise<void> {
    lastCheckpointAt = Date.now();
    if (unsigned.size === 0) return;
    const createdAt = clock.now();
    const rows = [...unsigned].map(([chain, head]) => {
      const content = { chain, chainSeq: head.chainSeq, hash: head.hash, createdAt };
      return { ...content, ...signCheckpoint(keyRing, content) };
    });
    await db.transaction(async (tx) => {
      await tx.insert(auditCheckpoints).values(rows);
      await tx.execute(sql`
        delete from audit_checkpoints where id in (
          select id from (
            select id, row_number() over (partition by chain order by id desc) as newer
            from audit_checkpoints
            where chain in (select jsonb_array_elements_text(${JSON.stringify(rows.map((row) => row.chain))}::jsonb))
          ) ranked
          where ranked.newer > ${CHECKPOINTS_KEPT})`);
    });
    for (const row of rows) {
      if (unsigned.get(row.chain)?.chainSeq === row.chainSeq) unsigned.delete(row.chain);
    }
  }

  async function sealAll(wait: boolean, checkpoint: boolean): Promise<void> {
    for (;;) {
      const count = await sealBatch(wait);
      if (count === undefined || count < batchSize) break;
    }
    if (checkpoint || Date.now() - lastCheckpointAt >= checkpointIntervalMs) {
      await writeCheckpoints();
    }
  }

  /**
   * By its cause only: drizzle's wrapper quotes the query and the entries' values. An unavailable
   * database (a restart, a shutdown under way) is already reported by readiness and by every
   * request; the next pass retries, so that is only worth a debug line. Anything else is a bug.
   */
  const logFailure = (message: string, error: unknown) => {
    const cause = databaseFailureCause(error);
    if (isDatabaseUnavailable(error)) logger.debug(message, { ...cause });
    else logger.error(message, { ...cause });
  };

  const tick = () => {
    timer = undefined;
    void serially(() => sealAll(false, false))
      .catch((error: unknown) => logFailure("audit sealing failed; retrying", error))
      .finally(() => {
        if (!closed && options.intervalMs !== undefined) {
          timer = setTimeout(tick, options.intervalMs);
          timer.unref();
        }
      });
  };
  if (options.intervalMs !== undefined) {
    timer = setTimeout(tick, options.intervalMs);
    timer.unref();
  }

  return {
    sealNow: (sealOptions = {}) => serially(() => sealAll(true, sealOptions.checkpoint === true)),
    async close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      await serially(() => sealAll(true, true)).catch((error: unknown) =>
        logFailure(
          "audit sealing at shutdown failed; another replica or the next start seals",
          error,
        ),
      );
    },
  };
}

/** Keep a gap at least this long before it can be dropped (see `nextProgress`). */
const GAP_GRACE_MS = 1_000;

interface ProgressInput {
  top: number;
  gaps: readonly AuditSealGap[];
  /** Seq values of the entries this pass read (and seals) inside the gaps. */
  sealedInGaps: readonly number[];
  /** False when the gap read hit the batch size (parts of the gaps were not read). */
  gapsReadWhole: boolean;
  /** Seq values of the entries read past `top`, ascending. */
  newSeqs: readonly number[];
  /** The snapshot taken before the reads: xmin, xmax (text, xid8) and the database's clock. */
  snapshot: { xmin: bigint; xmax: string; nowMs: number };
}

/**
 * The sealer's next position. Seq values are handed out before their transaction commits, so an
 * entry of an open transaction can commit after entries with higher seq values were sealed: every
 * seq value below the top that was not read becomes a gap, read again by every pass, until either
 * its entry commits (and is sealed) or it cannot any more. That is known from transaction ids: a
 * gap seen at least `GAP_GRACE_MS` ago is stamped with the xmax of a pass's snapshot (every
 * transaction that had written its entry by then has an id below it), and dropped by a later pass
 * whose snapshot, taken before its reads, has every transaction below that xmax ended (xmin ≥ it):
 * an entry of theirs that committed is visible to that pass's reads, and is sealed by it.
 * (A transaction takes its id when it writes its first row, microseconds after its seq value; the
 * grace covers that.)
 */
export function nextProgress(input: ProgressInput): {
  top: number;
  gaps: AuditSealGap[];
  changed: boolean;
} {
  const { snapshot } = input;
  const gaps: AuditSealGap[] = [];
  let changed = input.sealedInGaps.length > 0;
  for (const gap of input.gaps) {
    const [from, to, seenAtMs] = gap;
    let xmax = gap[3];
    if (xmax !== null && input.gapsReadWhole && snapshot.xmin >= BigInt(xmax)) {
      changed = true;
      continue; // Nothing can commit into it any more; what had committed is read by this pass.
    }
    if (xmax === null && snapshot.nowMs - seenAtMs >= GAP_GRACE_MS) {
      xmax = snapshot.xmax;
      changed = true;
    }
    // The range minus the entries found in it, in as few ranges as it takes.
    let start = from;
    for (const seq of input.sealedInGaps) {
      if (seq < from || seq > to) continue;
      if (seq > start) gaps.push([start, seq - 1, seenAtMs, xmax]);
      start = seq + 1;
    }
    if (start <= to) gaps.push([start, to, seenAtMs, xmax]);
  }
  let top = input.top;
  for (const seq of input.newSeqs) {
    if (seq > top + 1) gaps.push([top + 1, seq - 1, snapshot.nowMs, null]);
    top = seq;
  }
  if (top !== input.top) changed = true;
  // Many gaps (rolled-back entries piling up behind a long-running transaction, whose xid holds
  // every drop back) are merged pairwise, so a pass's read stays one short statement: a merged
  // gap may span sealed entries, which the read skips. It is stamped and dropped no earlier than
  // either part would have been.
  let merged = gaps;
  while (merged.length > MAX_GAP_RANGES) {
    const pairs: AuditSealGap[] = [];
    for (let i = 0; i < merged.length; i += 2) {
      const a = merged[i] as AuditSealGap;
      const b = merged[i + 1];
      if (b === undefined) {
        pairs.push(a);
        continue;
      }
      const xmax =
        a[3] === null || b[3] === null ? null : BigInt(a[3]) > BigInt(b[3]) ? a[3] : b[3];
      pairs.push([a[0], b[1], Math.max(a[2], b[2]), xmax]);
    }
    merged = pairs;
    changed = true;
  }
  return { top, gaps: merged, changed };
}

/** More gap ranges than this are merged (see `nextProgress`). */
export const MAX_GAP_RANGES = 256;

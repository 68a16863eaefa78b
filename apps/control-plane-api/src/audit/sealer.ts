import type { KeyRing } from "@keyway/crypto";
import {
  auditCheckpoints,
  auditLog,
  type Database,
  databaseFailureCause,
  executePrepared,
  isDatabaseUnavailable,
} from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { asc, isNull, sql } from "drizzle-orm";
import type { Logger } from "../logger";
import { auditEntryHash, chainOf, GENESIS_HASH, signCheckpoint } from "./chain";

/**
 * The sealer links committed, unsealed audit entries into their chains (SPEC §6.6): it gives each
 * its `chain`, `chain_seq`, `prev_hash` and `hash`, in insertion order, a batch per transaction.
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
      // The pass's own statements are prepared (one round trip each, no parse and plan in
      // PostgreSQL): a sandbox storm has the sealer run every interval (`pnpm bench:storm`).
      if (wait) {
        await executePrepared(tx, sql`select pg_advisory_xact_lock(${SEALER_LOCK_KEY})`);
      } else {
        const [row] = await executePrepared<{ locked: boolean }>(
          tx,
          sql`select pg_try_advisory_xact_lock(${SEALER_LOCK_KEY}) as locked`,
        );
        if (row?.locked !== true) return undefined;
      }
      const rows = await tx
        .select()
        .from(auditLog)
        .where(isNull(auditLog.hash))
        .orderBy(asc(auditLog.seq))
        .limit(batchSize);
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
          select chain_seq, hash from audit_log
          where audit_log.chain = c.chain
          order by chain_seq desc limit 1
        ) h on true`,
      );
      const current = new Map<string, Head>();
      for (const head of heads) {
        if (head.chain_seq !== null) {
          current.set(head.chain, { chainSeq: Number(head.chain_seq), hash: head.hash });
        }
      }
      const updates = rows.map((row) => {
        const chain = chainOf(row.organizationId);
        const previous = current.get(chain) ?? { chainSeq: 0, hash: GENESIS_HASH };
        const chainSeq = previous.chainSeq + 1;
        const hash = auditEntryHash({ ...row, chain, chainSeq, prevHash: previous.hash });
        current.set(chain, { chainSeq, hash });
        return { seq: row.seq, chain, chain_seq: chainSeq, prev_hash: previous.hash, hash };
      });
      await executePrepared(
        tx,
        sql`
        update audit_log as a
        set chain = v.chain, chain_seq = v.chain_seq, prev_hash = v.prev_hash, hash = v.hash
        from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb)
          as v(seq bigint, chain text, chain_seq bigint, prev_hash text, hash text)
        where a.seq = v.seq`,
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

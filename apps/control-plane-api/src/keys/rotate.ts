import {
  DecryptError,
  type FieldRef,
  type KeyRing,
  needsReencryption,
  reencryptField,
} from "@keyway/crypto";
import {
  auditCheckpoints,
  cachedCredentials,
  connectionCredentials,
  type Database,
  integrationTargets,
  oauthSessions,
  webhookSubscriptions,
} from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { and, asc, eq, gt, isNotNull, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import { checkpointSignatureHolds, signCheckpoint } from "../audit/chain";
import { appendAudit } from "../audit/service";

/**
 * Every column that holds a ciphertext, with the table and column names its associated data
 * uses (`table:column:id`, see packages/crypto). A new encrypted column must be added here, or
 * `keyway keys rotate` would leave it under an old key that an operator then removes.
 */
const ENCRYPTED_COLUMNS: readonly EncryptedColumn[] = [
  {
    table: "integration_targets",
    column: "secrets_ciphertext",
    pgTable: integrationTargets,
    id: integrationTargets.id,
    ciphertext: integrationTargets.secretsCiphertext,
  },
  {
    table: "connection_credentials",
    column: "secret_ciphertext",
    pgTable: connectionCredentials,
    id: connectionCredentials.id,
    ciphertext: connectionCredentials.secretCiphertext,
  },
  {
    table: "cached_credentials",
    column: "value_ciphertext",
    pgTable: cachedCredentials,
    id: cachedCredentials.id,
    ciphertext: cachedCredentials.valueCiphertext,
  },
  {
    table: "oauth_sessions",
    column: "pkce_verifier_ciphertext",
    pgTable: oauthSessions,
    id: oauthSessions.id,
    ciphertext: oauthSessions.pkceVerifierCiphertext,
  },
  {
    table: "webhook_subscriptions",
    column: "secret_ciphertext",
    pgTable: webhookSubscriptions,
    id: webhookSubscriptions.id,
    ciphertext: webhookSubscriptions.secretCiphertext,
  },
  {
    table: "webhook_subscriptions",
    column: "previous_secret_ciphertext",
    pgTable: webhookSubscriptions,
    id: webhookSubscriptions.id,
    ciphertext: webhookSubscriptions.previousSecretCiphertext,
  },
];

interface EncryptedColumn {
  table: string;
  column: string;
  pgTable: PgTable;
  id: PgColumn;
  ciphertext: PgColumn;
}

export interface ColumnRotation {
  table: string;
  column: string;
  /** Rows holding a ciphertext (or, for `audit_checkpoints.signature`, a signature). */
  scanned: number;
  /** Rows re-encrypted (checkpoints: re-signed) under the current key by this run. */
  reencrypted: number;
  /**
   * Rows that did not decrypt (unknown key version, tampered or moved value), or checkpoints whose
   * signature does not hold under the key that made it: left as they are.
   */
  failed: number;
  /** Ids of the failed rows (ids are not secret), for the operator to look into. */
  failedIds: string[];
}

export interface KeyRotationResult {
  keyVersion: number;
  columns: ColumnRotation[];
  /** True when every ciphertext now uses the current key, so older keys can be removed. */
  complete: boolean;
}

export interface RotateKeysOptions {
  clock: Clock;
  /** Who ran it, for the audit entry (e.g. `cli:keys-rotate`). */
  actor: string;
  /** Rows read per page. Default 200. */
  batchSize?: number;
}

/**
 * `keyway keys rotate` (SPEC §6.5): re-encrypts every stored ciphertext whose key version is not
 * the ring's current one. Rows are paged by id; each row is rewritten in its own short
 * transaction after `select … for update`, so a rotation never holds locks on many rows and a
 * concurrent writer (a secret being replaced) is neither lost nor overwritten with stale data.
 * Safe to run again: rows already under the current key are not touched. The ring must hold
 * every version still in use, which is why old keys are removed only after a complete run.
 * The audit chain's signed checkpoints are keyed by the master key too, so they are re-signed
 * (after their old signature is checked): otherwise removing the old key would make `audit
 * verify` report every older checkpoint as `checkpoint_invalid`.
 */
export async function rotateKeys(
  db: Database,
  keyRing: KeyRing,
  options: RotateKeysOptions,
): Promise<KeyRotationResult> {
  const batchSize = options.batchSize ?? 200;
  const columns: ColumnRotation[] = [];
  for (const column of ENCRYPTED_COLUMNS) {
    columns.push(await rotateColumn(db, keyRing, column, batchSize));
  }
  columns.push(await resignCheckpoints(db, keyRing, batchSize));
  const result: KeyRotationResult = {
    keyVersion: keyRing.current,
    columns,
    complete: columns.every((c) => c.failed === 0),
  };
  await appendAudit(db, options.clock, {
    organizationId: null,
    actor: options.actor,
    action: "keys.rotated",
    subjectType: "key_ring",
    subjectId: `v${keyRing.current}`,
    details: {
      keyVersion: keyRing.current,
      complete: result.complete,
      columns: columns.map(({ table, column, scanned, reencrypted, failed }) => ({
        table,
        column,
        scanned,
        reencrypted,
        failed,
      })),
    },
  });
  return result;
}

async function rotateColumn(
  db: Database,
  keyRing: KeyRing,
  column: EncryptedColumn,
  batchSize: number,
): Promise<ColumnRotation> {
  const stats: ColumnRotation = {
    table: column.table,
    column: column.column,
    scanned: 0,
    reencrypted: 0,
    failed: 0,
    failedIds: [],
  };
  let afterId = "";
  for (;;) {
    const page = await db
      .select({ id: column.id, ciphertext: column.ciphertext })
      .from(column.pgTable)
      .where(and(isNotNull(column.ciphertext), gt(column.id, afterId)))
      .orderBy(asc(column.id))
      .limit(batchSize);
    for (const row of page) {
      const id = String(row.id);
      afterId = id;
      stats.scanned++;
      if (typeof row.ciphertext !== "string" || !needsReencryption(keyRing, row.ciphertext)) {
        continue;
      }
      try {
        if (await rotateRow(db, keyRing, column, id)) stats.reencrypted++;
      } catch (error) {
        if (!(error instanceof DecryptError)) throw error;
        stats.failed++;
        stats.failedIds.push(id);
      }
    }
    if (page.length < batchSize) return stats;
  }
}

/** Re-reads the row under a lock so a value written since the page was read is the one rotated. */
async function rotateRow(
  db: Database,
  keyRing: KeyRing,
  column: EncryptedColumn,
  id: string,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [locked] = await tx
      .select({ ciphertext: column.ciphertext })
      .from(column.pgTable)
      .where(eq(column.id, id))
      .for("update");
    const current = locked?.ciphertext;
    if (typeof current !== "string" || !needsReencryption(keyRing, current)) return false;
    const ref: FieldRef = { table: column.table, column: column.column, id };
    const rotated = reencryptField(keyRing, ref, current);
    // Raw SQL because the column is only known at run time (drizzle's `set` wants property names).
    await tx.execute(
      sql`update ${column.pgTable} set ${sql.identifier(column.ciphertext.name)} = ${rotated} where ${column.id} = ${id}`,
    );
    return true;
  });
}

/**
 * Re-signs every audit checkpoint made with an older master key. A checkpoint whose signature does
 * not hold under the key that made it (forged, changed, or its key already removed) is left as it
 * is and counted as failed: re-signing it would launder a tampered anchor.
 */
async function resignCheckpoints(
  db: Database,
  keyRing: KeyRing,
  batchSize: number,
): Promise<ColumnRotation> {
  const stats: ColumnRotation = {
    table: "audit_checkpoints",
    column: "signature",
    scanned: 0,
    reencrypted: 0,
    failed: 0,
    failedIds: [],
  };
  let afterId = 0;
  for (;;) {
    const page = await db
      .select({ id: auditCheckpoints.id, keyVersion: auditCheckpoints.keyVersion })
      .from(auditCheckpoints)
      .where(gt(auditCheckpoints.id, afterId))
      .orderBy(asc(auditCheckpoints.id))
      .limit(batchSize);
    for (const row of page) {
      afterId = row.id;
      stats.scanned++;
      if (row.keyVersion === keyRing.current) continue;
      const outcome = await db.transaction(async (tx) => {
        const [locked] = await tx
          .select()
          .from(auditCheckpoints)
          .where(eq(auditCheckpoints.id, row.id))
          .for("update");
        // Pruned by the sealer, or re-signed by a concurrent run, since the page was read.
        if (locked === undefined || locked.keyVersion === keyRing.current) return "skipped";
        if (!checkpointSignatureHolds(keyRing, locked)) return "failed";
        await tx
          .update(auditCheckpoints)
          .set(signCheckpoint(keyRing, locked))
          .where(eq(auditCheckpoints.id, row.id));
        return "resigned";
      });
      if (outcome === "resigned") stats.reencrypted++;
      if (outcome === "failed") {
        stats.failed++;
        stats.failedIds.push(String(row.id));
      }
    }
    if (page.length < batchSize) return stats;
  }
}

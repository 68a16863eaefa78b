import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { KEY_PURPOSES, type KeyRing } from "@keyway/crypto";
import type { auditCheckpoints, auditLog, auditSeals } from "@keyway/db";
import { canonicalJson } from "@keyway/integrations-core";

/**
 * The audit chains' pure parts (SPEC §6.6): which chain an entry belongs to, an entry's hash, and
 * the signature of a checkpoint. The sealer (sealer.ts) writes them; `verifyAuditChain`
 * (service.ts) checks them.
 */

/** The chain of entries that belong to no organization (operators, the deployment's own). */
export const DEPLOYMENT_CHAIN = "deployment";
export const GENESIS_HASH = "0".repeat(64);

type AuditRow = typeof auditLog.$inferSelect;
type SealRow = typeof auditSeals.$inferSelect;
type CheckpointRow = typeof auditCheckpoints.$inferSelect;

/** One chain per organization, so an organization's verification reads its own entries only. */
export function chainOf(organizationId: string | null): string {
  return organizationId ?? DEPLOYMENT_CHAIN;
}

/** The fields an entry's hash covers: its content and its place in its chain. */
export interface SealedEntryContent {
  id: string;
  organizationId: string | null;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  traceId: string | null;
  details: Record<string, unknown>;
  createdAt: Date;
  chain: string;
  chainSeq: number;
  prevHash: string;
}

/**
 * SHA-256 of the canonical JSON of every column but `seq` (the insertion order, not part of the
 * chain) and `hash` itself. `chain` and `chainSeq` are covered, so an entry moved to another
 * place or chain no longer matches.
 */
export function auditEntryHash(row: SealedEntryContent): string {
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
    chain: row.chain,
    chainSeq: row.chainSeq,
    prevHash: row.prevHash,
  });
  return createHash("sha256").update(content).digest("hex");
}

/** A sealed entry's content: the entry (`audit_log`) with its links (`audit_seals`). */
export function sealedContent(entry: AuditRow, seal: SealRow): SealedEntryContent {
  return { ...entry, chain: seal.chain, chainSeq: seal.chainSeq, prevHash: seal.prevHash };
}

export interface CheckpointContent {
  chain: string;
  chainSeq: number;
  hash: string;
  createdAt: Date;
}

function checkpointMac(keyRing: KeyRing, version: number, content: CheckpointContent): Buffer {
  const message = canonicalJson({
    chain: content.chain,
    chainSeq: content.chainSeq,
    hash: content.hash,
    createdAt: content.createdAt.toISOString(),
  });
  return createHmac("sha256", keyRing.deriveKey(KEY_PURPOSES.auditCheckpoint, version))
    .update(message)
    .digest();
}

/** HMAC-SHA256 under the current master key's checkpoint key, with the version that made it. */
export function signCheckpoint(
  keyRing: KeyRing,
  content: CheckpointContent,
): { keyVersion: number; signature: string } {
  const keyVersion = keyRing.current;
  return {
    keyVersion,
    signature: checkpointMac(keyRing, keyVersion, content).toString("base64url"),
  };
}

/** False for a changed checkpoint, a forged one, or one made with a master key since removed. */
export function checkpointSignatureHolds(keyRing: KeyRing, row: CheckpointRow): boolean {
  if (!keyRing.hasVersion(row.keyVersion)) return false;
  const expected = checkpointMac(keyRing, row.keyVersion, row);
  const given = Buffer.from(row.signature, "base64url");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKeyRing, generateMasterKey } from "@keyway/crypto";
import {
  type AuditSealGap,
  auditLog,
  auditSealProgress,
  auditSeals,
  createDatabase,
  type DatabaseHandle,
  MIGRATIONS_FOLDER,
  runMigrations,
} from "@keyway/db";
import { createTestDatabase, type TestDatabase } from "@keyway/test-harness";
import { asc, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../logger";
import { auditEntryHash, GENESIS_HASH } from "./chain";
import { createAuditSealer, MAX_GAP_RANGES, nextProgress } from "./sealer";
import { appendAudit, verifyAuditChain } from "./service";

const keyRing = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
const clock = { now: () => new Date() };
const logger = createLogger({ level: "warn" });
const entry = (organizationId: string | null, subjectId: string) => ({
  organizationId,
  actor: "test",
  action: "test.appended",
  subjectType: "test",
  subjectId,
});

let database: TestDatabase | undefined;
let handle: DatabaseHandle | undefined;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await handle?.close();
  handle = undefined;
  await database?.drop();
  database = undefined;
});
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

describe("migration 0007: links move from audit_log's columns to audit_seals", () => {
  it("keeps sealed entries' links and seals the ones that were not, so the chains verify", async () => {
    database = await createTestDatabase("audit_seals_migration");
    // The migrations before 0007, from a copy of the folder with a shortened journal.
    const folder = await mkdtemp(join(tmpdir(), "keyway-migrations-"));
    cleanups.push(() => rm(folder, { recursive: true, force: true }));
    await cp(MIGRATIONS_FOLDER, folder, { recursive: true });
    const journalPath = join(folder, "meta", "_journal.json");
    const journal = JSON.parse(await readFile(journalPath, "utf8")) as {
      entries: { tag: string }[];
    };
    const before = journal.entries.findIndex((e) => e.tag === "0007_audit_insert_only_seals");
    expect(before).toBeGreaterThan(0);
    await writeFile(
      journalPath,
      JSON.stringify({ ...journal, entries: journal.entries.slice(0, before) }),
    );
    await runMigrations(database.url, folder);

    // Four entries of one organization as the former sealer left them: the first three sealed
    // (in the columns of audit_log), the fourth not yet; and one deployment entry not sealed.
    handle = createDatabase(database.url, { max: 2 });
    const sql = handle.sql;
    const org = "org_01migrationtest000000000";
    const createdAt = new Date("2026-12-01T00:00:00.000Z");
    let prev = GENESIS_HASH;
    const sealedHashes: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const organizationId = i === 5 ? null : org;
      const content = {
        id: `audit_01migration${i}`,
        organizationId,
        actor: "test",
        action: "test.appended",
        subjectType: "test",
        subjectId: `s-${i}`,
        traceId: null,
        details: { i },
        createdAt,
      };
      const sealed = i <= 3;
      const hash = sealed
        ? auditEntryHash({ ...content, chain: org, chainSeq: i, prevHash: prev })
        : null;
      await sql`
        insert into audit_log (id, organization_id, actor, action, subject_type, subject_id,
          trace_id, details, created_at, chain, chain_seq, prev_hash, hash)
        values (${content.id}, ${organizationId}, 'test', 'test.appended', 'test', ${content.subjectId},
          null, ${JSON.stringify(content.details)}::jsonb, ${createdAt.toISOString()}::timestamptz,
          ${sealed ? org : null},
          ${sealed ? i : null}, ${sealed ? prev : null}, ${hash})`;
      if (hash !== null) {
        sealedHashes.push(hash);
        prev = hash;
      }
    }

    await runMigrations(database.url);
    const moved = await handle.db.select().from(auditSeals).orderBy(asc(auditSeals.chainSeq));
    expect(moved.map((seal) => seal.hash)).toEqual(sealedHashes);
    const [progress] = await handle.db.select().from(auditSealProgress);
    expect(progress?.topSeq).toBe(5);
    expect(progress?.gaps.map(([from, to]) => [from, to])).toEqual([[4, 5]]);

    const sealer = createAuditSealer({ db: handle.db, keyRing, clock, logger });
    await sealer.sealNow({ checkpoint: true });
    expect(await verifyAuditChain(handle.db, keyRing)).toEqual({
      ok: true,
      checkedEntries: 5,
      unsealedEntries: 0,
    });
    const chain = await handle.db
      .select()
      .from(auditSeals)
      .where(eq(auditSeals.chain, org))
      .orderBy(asc(auditSeals.chainSeq));
    expect(chain.map((seal) => seal.seq)).toEqual([1, 2, 3, 4]);
    // New entries after the upgrade are sealed onto the same chains.
    await appendAudit(handle.db, clock, entry(org, "after"));
    await sealer.close();
    expect(await verifyAuditChain(handle.db, keyRing, { organizationId: org })).toMatchObject({
      ok: true,
      checkedEntries: 5,
      unsealedEntries: 0,
    });
  });
});

describe("the sealer's gaps", () => {
  beforeEach(async () => {
    database = await createTestDatabase("audit_seals_gaps");
    await runMigrations(database.url);
    handle = createDatabase(database.url, { max: 4 });
  });

  it("seals an entry that commits after later ones were sealed, and forgets a rolled-back one", async () => {
    const db = handle!.db;
    const org = "org_01gapstest00000000000000";
    const sealer = createAuditSealer({ db, keyRing, clock, logger });
    // An open transaction holds seq 1; a rolled-back one had seq 2; seq 3 commits.
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const slow = db.transaction(async (tx) => {
      await appendAudit(tx, clock, entry(org, "slow"));
      opened();
      await held;
    });
    await open;
    await db
      .transaction(async (tx) => {
        await appendAudit(tx, clock, entry(org, "rolled-back"));
        throw new Error("roll back");
      })
      .catch(() => undefined);
    await appendAudit(db, clock, entry(org, "fast"));
    await sealer.sealNow();
    const gapsOf = async () =>
      (await db.select().from(auditSealProgress).where(eq(auditSealProgress.id, 1)))[0];
    expect((await gapsOf())?.topSeq).toBe(3);
    expect((await gapsOf())?.gaps.map(([from, to]) => [from, to])).toEqual([[1, 2]]);

    // However long it stays open, the open transaction's gap is kept (its xid is still running).
    const stamp = (await gapsOf())!;
    await db
      .update(auditSealProgress)
      .set({ gaps: stamp.gaps.map(([from, to]) => [from, to, 0, null]) })
      .where(eq(auditSealProgress.id, 1));
    await sealer.sealNow();
    await sealer.sealNow();
    expect((await gapsOf())?.gaps.map(([from, to]) => [from, to])).toEqual([[1, 2]]);

    release();
    await slow;
    await sealer.sealNow();
    // The slow entry is sealed after the fast one; the rolled-back seq stays a gap until a pass
    // sees every transaction that could commit into it ended, then it is dropped.
    const sealed = await db
      .select({ subjectId: auditLog.subjectId, chainSeq: auditSeals.chainSeq })
      .from(auditSeals)
      .innerJoin(auditLog, eq(auditLog.seq, auditSeals.seq))
      .orderBy(asc(auditSeals.chainSeq));
    expect(sealed).toEqual([
      { subjectId: "fast", chainSeq: 1 },
      { subjectId: "slow", chainSeq: 2 },
    ]);
    await sealer.sealNow();
    expect((await gapsOf())?.gaps).toEqual([]);
    await sealer.close();
    expect(await verifyAuditChain(db, keyRing)).toEqual({
      ok: true,
      checkedEntries: 2,
      unsealedEntries: 0,
    });
  });

  it("skips sealed entries inside a gap (a merged gap can span them)", async () => {
    const db = handle!.db;
    const org = "org_01mergedgap";
    const sealer = createAuditSealer({ db, keyRing, clock, logger });
    await appendAudit(db, clock, entry(org, "one"));
    await appendAudit(db, clock, entry(org, "two"));
    await sealer.sealNow();
    await db
      .update(auditSealProgress)
      .set({ gaps: [[1, 2, 0, null]] })
      .where(eq(auditSealProgress.id, 1));
    await appendAudit(db, clock, entry(org, "three"));
    await sealer.sealNow();
    await sealer.close();
    expect(await verifyAuditChain(db, keyRing)).toEqual({
      ok: true,
      checkedEntries: 3,
      unsealedEntries: 0,
    });
  });

  it("never seals an entry twice across many passes and concurrent writers", async () => {
    const db = handle!.db;
    const sealer = createAuditSealer({ db, keyRing, clock, logger, batchSize: 7 });
    const orgs = ["org_01aaaa", "org_01bbbb", null];
    const writes = Array.from({ length: 120 }, (_, i) =>
      db
        .transaction(async (tx) => {
          await appendAudit(tx, clock, entry(orgs[i % 3] ?? null, `w-${i}`));
          if (i % 7 === 3) throw new Error("roll back");
        })
        .catch(() => undefined),
    );
    const passes = Array.from({ length: 10 }, () => sealer.sealNow());
    await Promise.all([...writes, ...passes]);
    await sealer.sealNow({ checkpoint: true });
    expect(await verifyAuditChain(db, keyRing)).toEqual({
      ok: true,
      checkedEntries: 120 - 17,
      unsealedEntries: 0,
    });
    await sealer.close();
  });
});

describe("nextProgress", () => {
  const snapshot = { xmin: 100n, xmax: "105", nowMs: 10_000 };
  it("turns unread seq values below the new top into a gap", () => {
    expect(
      nextProgress({
        top: 10,
        gaps: [],
        sealedInGaps: [],
        gapsReadWhole: true,
        newSeqs: [11, 14, 15],
        snapshot,
      }),
    ).toEqual({ top: 15, gaps: [[12, 13, 10_000, null]], changed: true });
  });
  it("splits a gap around the entries found in it, stamps it after the grace, drops it once its transactions ended", () => {
    const found = nextProgress({
      top: 20,
      gaps: [[5, 9, 9_500, null]],
      sealedInGaps: [6, 9],
      gapsReadWhole: true,
      newSeqs: [],
      snapshot,
    });
    // Seen half a second ago: not stamped yet.
    expect(found).toEqual({
      top: 20,
      gaps: [
        [5, 5, 9_500, null],
        [7, 8, 9_500, null],
      ],
      changed: true,
    });
    const stamped = nextProgress({
      top: 20,
      gaps: found.gaps,
      sealedInGaps: [],
      gapsReadWhole: true,
      newSeqs: [],
      snapshot: { ...snapshot, nowMs: 10_600 },
    });
    expect(stamped.gaps).toEqual([
      [5, 5, 9_500, "105"],
      [7, 8, 9_500, "105"],
    ]);
    // A transaction below 105 still runs: kept.
    expect(
      nextProgress({
        top: 20,
        gaps: stamped.gaps,
        sealedInGaps: [],
        gapsReadWhole: true,
        newSeqs: [],
        snapshot: { xmin: 104n, xmax: "110", nowMs: 11_000 },
      }).gaps,
    ).toEqual(stamped.gaps);
    // Not dropped when the pass could not read the gaps whole (its batch filled up).
    expect(
      nextProgress({
        top: 20,
        gaps: stamped.gaps,
        sealedInGaps: [],
        gapsReadWhole: false,
        newSeqs: [],
        snapshot: { xmin: 105n, xmax: "110", nowMs: 11_000 },
      }).gaps,
    ).toEqual(stamped.gaps);
    expect(
      nextProgress({
        top: 20,
        gaps: stamped.gaps,
        sealedInGaps: [],
        gapsReadWhole: true,
        newSeqs: [],
        snapshot: { xmin: 105n, xmax: "110", nowMs: 11_000 },
      }),
    ).toEqual({ top: 20, gaps: [], changed: true });
  });
  it("merges gaps past MAX_GAP_RANGES into ranges covering them all, dropped no earlier than any part", () => {
    const gaps = Array.from(
      { length: MAX_GAP_RANGES + 44 },
      (_, i): AuditSealGap => [i * 10, i * 10 + 1, 1_000 + i, i === 3 ? null : String(200 + i)],
    );
    const next = nextProgress({
      top: 10_000,
      gaps,
      sealedInGaps: [],
      gapsReadWhole: true,
      newSeqs: [],
      snapshot: { xmin: 100n, xmax: "900", nowMs: 1_500 },
    });
    expect(next.gaps.length).toBeLessThanOrEqual(MAX_GAP_RANGES);
    for (const [from, to] of gaps) {
      expect(next.gaps.some(([a, b]) => a <= from && to <= b)).toBe(true);
    }
    // Ranges 2 and 3 were merged: 3 was not stamped, so neither is the merge; it was seen last.
    expect(next.gaps.find(([a, b]) => a <= 30 && 31 <= b)).toEqual([20, 31, 1_003, null]);
    expect(next.gaps.find(([a, b]) => a <= 0 && 1 <= b)).toEqual([0, 11, 1_001, "201"]);
  });
  it("reports no change when nothing moved", () => {
    expect(
      nextProgress({
        top: 3,
        gaps: [],
        sealedInGaps: [],
        gapsReadWhole: true,
        newSeqs: [],
        snapshot,
      }).changed,
    ).toBe(false);
  });
});

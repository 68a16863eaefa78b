import { auditCheckpoints, auditLog, auditSeals, createDatabase, getFreePort } from "@keyway/db";
import { asc, desc, eq, getTableColumns } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../logger";
import { createTestApp, type TestApp } from "../testing/test-app";
import { CHECKPOINTS_KEPT, createAuditSealer } from "./sealer";
import { appendAudit, verifyAuditChain } from "./service";

let t: TestApp;
let acme: Awaited<ReturnType<TestApp["createOrganization"]>>;
let globex: Awaited<ReturnType<TestApp["createOrganization"]>>;

beforeAll(async () => {
  t = await createTestApp();
  acme = await t.createOrganization("Acme");
  globex = await t.createOrganization("Globex");
});
afterAll(async () => {
  await t.close();
});

describe("GET /v1/audit", () => {
  it("lists the caller's organization's entries, newest first, to every role", async () => {
    for (const token of [acme.viewer, acme.member, acme.admin]) {
      const page = await t.call("GET", "/v1/audit", token);
      expect(page.status).toBe(200);
      const actions = page.body.items.map((e: { action: string }) => e.action);
      expect(actions).toContain("organization.created");
      expect(actions).toContain("api_token.created");
      const seqs = page.body.items.map((e: { seq: number }) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
      expect(page.body.items.every((e: { id: string }) => e.id.startsWith("aud_"))).toBe(true);
    }
  });

  it("never shows another organization's entries", async () => {
    const mine = await t.call("GET", "/v1/audit?limit=500", acme.viewer);
    const theirs = await t.call("GET", "/v1/audit?limit=500", globex.viewer);
    const mineIds = new Set(mine.body.items.map((e: { id: string }) => e.id));
    expect(theirs.body.items.some((e: { id: string }) => mineIds.has(e.id))).toBe(false);
    expect(JSON.stringify(mine.body)).not.toContain(globex.id);
  });

  it("pages with limit and before", async () => {
    const all = await t.call("GET", "/v1/audit", acme.admin);
    expect(all.body.items.length).toBeGreaterThanOrEqual(3);
    const first = await t.call("GET", "/v1/audit?limit=2", acme.admin);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.nextBefore).toBe(first.body.items[1].seq);
    const second = await t.call(
      "GET",
      `/v1/audit?limit=2&before=${first.body.nextBefore}`,
      acme.admin,
    );
    expect(second.body.items[0]).toEqual(all.body.items[2]);
    const last = await t.call("GET", "/v1/audit?limit=500", acme.admin);
    expect(last.body.nextBefore).toBeNull();
  });

  it("shows operators every entry of the deployment, or one organization's", async () => {
    const all = await t.call("GET", "/v1/audit?limit=500", t.operatorToken);
    expect(all.status).toBe(200);
    const owners = new Set(
      all.body.items.map((e: { organizationId: string | null }) => e.organizationId),
    );
    expect(owners).toContain(acme.id);
    expect(owners).toContain(globex.id);
    const one = await t.call(
      "GET",
      `/v1/audit?limit=500&organizationId=${globex.id}`,
      t.operatorToken,
    );
    expect(one.status).toBe(200);
    expect(one.body.items.length).toBeGreaterThan(0);
    expect(
      one.body.items.every(
        (e: { organizationId: string | null }) => e.organizationId === globex.id,
      ),
    ).toBe(true);
    // The same entries an organization token of Globex lists.
    const theirs = await t.call("GET", "/v1/audit?limit=500", globex.viewer);
    // (Ids: an entry may be sealed between the two reads, filling its chainSeq and hash.)
    const ids = (page: { body: { items: { id: string }[] } }) => page.body.items.map((e) => e.id);
    expect(ids(one)).toEqual(ids(theirs));
  });

  it("lets an organization name only itself: another organization's id reads as not found", async () => {
    const own = await t.call("GET", `/v1/audit?organizationId=${acme.id}`, acme.viewer);
    expect(own.status).toBe(200);
    const other = await t.call("GET", `/v1/audit?organizationId=${globex.id}`, acme.viewer);
    expect(other.status).toBe(404);
    expect(JSON.stringify(other.body)).not.toContain("Globex");
  });

  it("answers bad queries with 400 and strangers with 401", async () => {
    const bad = await t.call("GET", "/v1/audit?limit=0&before=abc", acme.admin);
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues.map((i: { field: string }) => i.field).sort()).toEqual([
      "query.before",
      "query.limit",
    ]);
    expect((await t.call("GET", "/v1/audit", undefined)).status).toBe(401);
  });
});

describe("GET /v1/audit/verify", () => {
  /** Entries of one organization, as its own audit listing shows them. */
  async function ownEntries(token: string): Promise<number> {
    return (await t.call("GET", "/v1/audit?limit=500", token)).body.items.length;
  }
  async function allEntries(): Promise<number> {
    const [row] = await t.deps.database.sql<
      { n: number }[]
    >`select count(*)::int as n from audit_log`;
    return row!.n;
  }

  it("is for organization admins and operators", async () => {
    expect((await t.call("GET", "/v1/audit/verify", acme.viewer)).status).toBe(403);
    expect((await t.call("GET", "/v1/audit/verify", acme.member)).status).toBe(403);
    const admin = await t.call("GET", "/v1/audit/verify", acme.admin);
    expect(admin.status).toBe(200);
    // Verifying seals what was pending first: every entry is checked, none left unsealed.
    expect(admin.body).toEqual({
      scope: "organization",
      ok: true,
      checkedEntries: await ownEntries(acme.viewer),
      unsealedEntries: 0,
    });
    const operator = await t.call("GET", "/v1/audit/verify", t.operatorToken);
    expect(operator.body).toEqual({
      scope: "deployment",
      ok: true,
      checkedEntries: await allEntries(),
      unsealedEntries: 0,
    });
  });

  it("shows an organization figures for its own entries only, never the others' activity", async () => {
    const before = (await t.call("GET", "/v1/audit/verify", acme.admin)).body.checkedEntries;
    for (const name of ["one", "two", "three"]) {
      await t.call("POST", "/v1/api-tokens", globex.admin, { name, role: "viewer" });
    }
    const acmeAfter = await t.call("GET", "/v1/audit/verify", acme.admin);
    expect(acmeAfter.body.checkedEntries).toBe(before);
    const globexAfter = await t.call("GET", "/v1/audit/verify", globex.admin);
    expect(globexAfter.body.checkedEntries).toBe(await ownEntries(globex.viewer));
    expect(globexAfter.body.checkedEntries).toBeLessThan(await allEntries());
  });

  it("detects a tampered row by its seq, telling only its organization and operators", async () => {
    const sql = t.deps.database.sql;
    const [target] = await sql<{ seq: string; id: string; details: unknown }[]>`
      select seq, id, details from audit_log
      where organization_id = ${acme.id} and action = 'api_token.created'
      order by seq limit 1`;
    const seq = Number(target!.seq);
    await sql`update audit_log set details = ${JSON.stringify({ name: "innocent", role: "viewer" })}::jsonb where seq = ${seq}`;
    try {
      const operator = await t.call("GET", "/v1/audit/verify", t.operatorToken);
      expect(operator.body).toMatchObject({
        scope: "deployment",
        ok: false,
        firstInvalid: { seq, id: target!.id, reason: "hash_mismatch" },
      });
      const owner = await t.call("GET", "/v1/audit/verify", acme.admin);
      expect(owner.body).toMatchObject({
        scope: "organization",
        ok: false,
        firstInvalid: { seq, id: target!.id, reason: "hash_mismatch" },
      });
      // Globex's own entries still verify; it learns nothing about Acme's.
      const stranger = await t.call("GET", "/v1/audit/verify", globex.admin);
      expect(stranger.body).toEqual({
        scope: "organization",
        ok: true,
        checkedEntries: await ownEntries(globex.viewer),
        unsealedEntries: 0,
      });
    } finally {
      await sql`update audit_log set details = ${JSON.stringify(target!.details)}::jsonb where seq = ${seq}`;
    }
    expect((await t.call("GET", "/v1/audit/verify", t.operatorToken)).body.ok).toBe(true);
  });

  // Each organization has its own chain: a removed entry breaks the link of the next entry of
  // that organization, and the others' chains still verify. (With the single chain of before,
  // the next entry could be any organization's.)
  it("detects a deleted middle entry as a broken link at the entry after it in its chain", async () => {
    const victim = await t.createOrganization("Initech");
    const sql = t.deps.database.sql;
    await t.call("GET", "/v1/audit/verify", victim.admin);
    const rows = await sql<{ seq: string; chain_seq: string }[]>`
      select seq, chain_seq from audit_log join audit_seals using (seq)
      where organization_id = ${victim.id} order by chain_seq`;
    expect(rows.length).toBeGreaterThanOrEqual(3);
    const next = rows[2]!;
    // The entry and its link both removed (a careful tamperer).
    await sql`delete from audit_log where seq = ${rows[1]!.seq}`;
    await sql`delete from audit_seals where seq = ${rows[1]!.seq}`;
    const owner = await t.call("GET", "/v1/audit/verify", victim.admin);
    expect(owner.body).toMatchObject({
      ok: false,
      checkedEntries: 1,
      firstInvalid: {
        seq: Number(next.seq),
        chainSeq: Number(next.chain_seq),
        reason: "broken_link",
      },
    });
    expect((await t.call("GET", "/v1/audit/verify", t.operatorToken)).body).toMatchObject({
      ok: false,
      firstInvalid: { seq: Number(next.seq), reason: "broken_link" },
    });
    expect((await t.call("GET", "/v1/audit/verify", acme.admin)).body.ok).toBe(true);
    await sql`delete from audit_log where organization_id = ${victim.id}`;
    await sql`delete from audit_seals where chain = ${victim.id}`;
    await sql`delete from audit_checkpoints where chain = ${victim.id}`;
  });

  it("detects an entry removed without its link, at the link naming it", async () => {
    const victim = await t.createOrganization("Vandelay");
    const sql = t.deps.database.sql;
    await t.call("GET", "/v1/audit/verify", victim.admin);
    const rows = await sql<{ seq: string; chain_seq: string }[]>`
      select seq, chain_seq from audit_log join audit_seals using (seq)
      where organization_id = ${victim.id} order by chain_seq`;
    expect(rows.length).toBeGreaterThanOrEqual(2);
    const removed = rows[1]!;
    await sql`delete from audit_log where seq = ${removed.seq}`;
    expect((await t.call("GET", "/v1/audit/verify", victim.admin)).body).toMatchObject({
      ok: false,
      checkedEntries: 1,
      firstInvalid: {
        seq: Number(removed.seq),
        chainSeq: Number(removed.chain_seq),
        reason: "broken_link",
      },
    });
    await sql`delete from audit_log where organization_id = ${victim.id}`;
    await sql`delete from audit_seals where chain = ${victim.id}`;
    await sql`delete from audit_checkpoints where chain = ${victim.id}`;
  });

  it("detects removed newest entries by the signed checkpoint naming one of them", async () => {
    const victim = await t.createOrganization("Hooli");
    const sql = t.deps.database.sql;
    // Verifying seals the organization's entries and checkpoints the chain's head.
    expect((await t.call("GET", "/v1/audit/verify", victim.admin)).body.ok).toBe(true);
    const [head] = await sql<{ chain_seq: string }[]>`
      select chain_seq from audit_checkpoints where chain = ${victim.id} order by id desc limit 1`;
    const headSeq = Number(head!.chain_seq);
    // Removing the newest entries (and their links) leaves a shorter chain whose every link
    // still holds.
    await sql`
      with removed as (
        delete from audit_seals where chain = ${victim.id} and chain_seq >= ${headSeq - 1}
        returning seq)
      delete from audit_log where seq in (select seq from removed)`;
    const result = await t.call("GET", "/v1/audit/verify", victim.admin);
    expect(result.body).toMatchObject({
      ok: false,
      checkedEntries: headSeq - 2,
      firstInvalid: { reason: "checkpoint_head_missing", chainSeq: headSeq },
    });
    expect((await t.call("GET", "/v1/audit/verify", t.operatorToken)).body).toMatchObject({
      ok: false,
      firstInvalid: { reason: "checkpoint_head_missing" },
    });
    // New entries sealed onto the shortened chain do not hide it: the checkpoint's position
    // then holds an entry with another hash (and a new checkpoint for the new head changes
    // nothing: every checkpoint must hold).
    await t.call("POST", "/v1/api-tokens", victim.admin, { name: "after", role: "viewer" });
    await t.call("POST", "/v1/api-tokens", victim.admin, { name: "after-2", role: "viewer" });
    expect((await t.call("GET", "/v1/audit/verify", victim.admin)).body).toMatchObject({
      ok: false,
      checkedEntries: headSeq - 1,
      firstInvalid: { reason: "checkpoint_head_missing", chainSeq: headSeq },
    });
    // Nor does rewriting the checkpoint to name the new head: its signature no longer holds.
    await sql`delete from audit_log where organization_id = ${victim.id}`;
    await sql`delete from audit_seals where chain = ${victim.id}`;
    await sql`update audit_checkpoints set chain_seq = 0 where chain = ${victim.id}`;
    expect((await t.call("GET", "/v1/audit/verify", victim.admin)).body).toMatchObject({
      ok: false,
      firstInvalid: { reason: "checkpoint_invalid" },
    });
    await sql`delete from audit_checkpoints where chain = ${victim.id}`;
  });
});

describe("appending and sealing", () => {
  const entry = (organizationId: string, subjectId: string) => ({
    organizationId,
    actor: "test",
    action: "test.appended",
    subjectType: "test",
    subjectId,
  });

  // Before, every append took one advisory lock held until its transaction ended: a second
  // writer waited for the first to commit, which serialised every audited write (credential
  // resolutions, webhook ingest) on commit + fsync. This test would hang on that lock.
  it("lets a writer append and commit while another transaction's entry is still open", async () => {
    const org = await t.createOrganization("Umbrella");
    const db = t.deps.database.db;
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let firstAppended!: () => void;
    const appended = new Promise<void>((resolve) => {
      firstAppended = resolve;
    });
    const first = db.transaction(async (tx) => {
      await appendAudit(tx, t.clock, entry(org.id, "first"));
      firstAppended();
      await firstHeld;
    });
    await appended;
    await db.transaction((tx) => appendAudit(tx, t.clock, entry(org.id, "second")));
    // The second is committed and sealed while the first is still open, so the first (an earlier
    // `seq`) takes a later place in the chain.
    await t.deps.auditSealer.sealNow();
    releaseFirst();
    await first;
    await t.deps.auditSealer.sealNow();
    const rows = await db
      .select({ ...getTableColumns(auditLog), chainSeq: auditSeals.chainSeq })
      .from(auditLog)
      .innerJoin(auditSeals, eq(auditSeals.seq, auditLog.seq))
      .where(eq(auditLog.action, "test.appended"))
      .orderBy(asc(auditSeals.chainSeq));
    const mine = rows.filter((row) => row.organizationId === org.id);
    expect(mine.map((row) => row.subjectId)).toEqual(["second", "first"]);
    expect(mine[0]!.seq).toBeGreaterThan(mine[1]!.seq);
    expect(await verifyAuditChain(db, t.deps.keyRing, { organizationId: org.id })).toMatchObject({
      ok: true,
      unsealedEntries: 0,
    });
  });

  it("seals concurrent appends of several organizations into one gapless chain each, without rolled-back ones", async () => {
    const orgs = [await t.createOrganization("Soylent"), await t.createOrganization("Tyrell")];
    const db = t.deps.database.db;
    const writes = Array.from({ length: 60 }, (_, i) => {
      const org = orgs[i % 2]!;
      return db
        .transaction(async (tx) => {
          await appendAudit(tx, t.clock, entry(org.id, `w-${i}`));
          if (i % 5 === 4) throw new Error("rolled back");
        })
        .catch(() => undefined);
    });
    // The sealer runs while the writes commit: whatever it finds committed, it seals.
    await Promise.all([...writes, t.deps.auditSealer.sealNow(), t.deps.auditSealer.sealNow()]);
    await t.deps.auditSealer.sealNow({ checkpoint: true });
    for (const org of orgs) {
      const rows = await db
        .select({ ...getTableColumns(auditSeals), ...getTableColumns(auditLog) })
        .from(auditLog)
        .innerJoin(auditSeals, eq(auditSeals.seq, auditLog.seq))
        .where(eq(auditLog.organizationId, org.id))
        .orderBy(asc(auditSeals.chainSeq));
      // Every entry of the organization is sealed.
      expect(await db.$count(auditLog, eq(auditLog.organizationId, org.id))).toBe(rows.length);
      expect(rows.map((row) => row.chainSeq)).toEqual(rows.map((_, i) => i + 1));
      expect(rows.every((row) => row.chain === org.id)).toBe(true);
      const written = rows.filter((row) => row.action === "test.appended").map((r) => r.subjectId);
      expect(written).toHaveLength(24);
      expect(written.some((id) => Number(id.slice(2)) % 5 === 4)).toBe(false);
      for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
      const [checkpoint] = await db
        .select()
        .from(auditCheckpoints)
        .where(eq(auditCheckpoints.chain, org.id))
        .orderBy(asc(auditCheckpoints.id));
      expect(checkpoint).toBeDefined();
    }
    expect(await verifyAuditChain(db, t.deps.keyRing)).toMatchObject({ ok: true });
  });

  it("keeps each chain's newest checkpoints only, and the chain still verifies", async () => {
    const [busy, quiet] = [
      await t.createOrganization("Cyberdyne"),
      await t.createOrganization("Oscorp"),
    ];
    const db = t.deps.database.db;
    await appendAudit(db, t.clock, entry(quiet.id, "q-0"));
    await t.deps.auditSealer.sealNow({ checkpoint: true });
    const passes = CHECKPOINTS_KEPT + 5;
    for (let i = 0; i < passes; i++) {
      await appendAudit(db, t.clock, entry(busy.id, `b-${i}`));
      await t.deps.auditSealer.sealNow({ checkpoint: true });
    }
    const kept = await db
      .select()
      .from(auditCheckpoints)
      .where(eq(auditCheckpoints.chain, busy.id))
      .orderBy(asc(auditCheckpoints.chainSeq));
    const [head] = await db
      .select({ chainSeq: auditSeals.chainSeq })
      .from(auditSeals)
      .where(eq(auditSeals.chain, busy.id))
      .orderBy(desc(auditSeals.chainSeq))
      .limit(1);
    expect(kept).toHaveLength(CHECKPOINTS_KEPT);
    expect(kept.at(-1)!.chainSeq).toBe(head!.chainSeq);
    // Another chain's checkpoint is not pruned by this chain's.
    const quietKept = await db
      .select()
      .from(auditCheckpoints)
      .where(eq(auditCheckpoints.chain, quiet.id));
    expect(quietKept.length).toBeGreaterThan(0);
    expect(await verifyAuditChain(db, t.deps.keyRing, { organizationId: busy.id })).toMatchObject({
      ok: true,
    });
  });

  it("lists recorded entries before they are sealed, in the same order after", async () => {
    const org = await t.createOrganization("Wonka");
    for (const name of ["a", "b", "c"]) {
      await t.call("POST", "/v1/api-tokens", org.admin, { name, role: "viewer" });
    }
    const before = (await t.call("GET", "/v1/audit?limit=500", org.viewer)).body.items;
    expect(before.some((item: { hash: string | null }) => item.hash === null)).toBe(true);
    await t.deps.auditSealer.sealNow();
    const after = (await t.call("GET", "/v1/audit?limit=500", org.viewer)).body.items;
    expect(after.map((item: { id: string }) => item.id)).toEqual(
      before.map((item: { id: string }) => item.id),
    );
    expect(after.every((item: { hash: string | null }) => item.hash !== null)).toBe(true);
    expect(after.map((item: { chainSeq: number }) => item.chainSeq)).toEqual(
      after.map((_: unknown, i: number) => after.length - i),
    );
  });
});

describe("the sealer's timer", () => {
  it("logs a failed pass by its cause, never the query or the entries' values", async () => {
    // Nothing listens on this port: every pass fails to connect.
    const unreachable = createDatabase(`postgres://keyway@127.0.0.1:${await getFreePort()}/none`, {
      max: 1,
    });
    const lines: string[] = [];
    const sealer = createAuditSealer({
      db: unreachable.db,
      keyRing: t.deps.keyRing,
      clock: t.clock,
      logger: createLogger({ level: "debug", write: (line) => lines.push(line) }),
      intervalMs: 10,
    });
    try {
      for (let i = 0; i < 200 && lines.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      // An unreachable database is a debug line (readiness reports it); never the query.
      expect(JSON.parse(lines[0] ?? "{}")).toMatchObject({
        level: "debug",
        msg: "audit sealing failed; retrying",
        code: "ECONNREFUSED",
      });
      expect(lines.join("\n")).not.toContain("Failed query");
    } finally {
      await sealer.close();
      await unreachable.close();
    }
  });
});

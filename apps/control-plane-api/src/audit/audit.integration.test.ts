import { auditLog } from "@keyway/db";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../testing/test-app";
import { appendAudit, appendAuditEntries, verifyAuditChain } from "./service";

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

  it("answers bad queries with 400, operators with 403 and strangers with 401", async () => {
    const bad = await t.call("GET", "/v1/audit?limit=0&before=abc", acme.admin);
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.issues.map((i: { field: string }) => i.field).sort()).toEqual([
      "query.before",
      "query.limit",
    ]);
    expect((await t.call("GET", "/v1/audit", t.operatorToken)).status).toBe(403);
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
    expect(admin.body).toEqual({
      scope: "organization",
      ok: true,
      checkedEntries: await ownEntries(acme.viewer),
    });
    const operator = await t.call("GET", "/v1/audit/verify", t.operatorToken);
    expect(operator.body).toEqual({
      scope: "deployment",
      ok: true,
      checkedEntries: await allEntries(),
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
      expect(operator.body.checkedEntries).toBeLessThan(seq);
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
      });
    } finally {
      await sql`update audit_log set details = ${JSON.stringify(target!.details)}::jsonb where seq = ${seq}`;
    }
    expect((await t.call("GET", "/v1/audit/verify", t.operatorToken)).body.ok).toBe(true);
  });

  it("detects a deleted row as a broken link at the entry after it", async () => {
    const sql = t.deps.database.sql;
    const rows = await sql<{ seq: string; organization_id: string | null }[]>`
      select seq, organization_id from audit_log order by seq`;
    const victim = Number(rows[2]!.seq);
    const next = rows[3]!;
    await sql`delete from audit_log where seq = ${victim}`;
    const result = await t.call("GET", "/v1/audit/verify", t.operatorToken);
    expect(result.body).toMatchObject({
      ok: false,
      checkedEntries: 2,
      firstInvalid: { seq: Number(next.seq), reason: "broken_link" },
    });
    // The organization owning the next entry sees its entry's broken link; the other does not.
    const [owner, other] = next.organization_id === acme.id ? [acme, globex] : [globex, acme];
    expect((await t.call("GET", "/v1/audit/verify", owner.admin)).body).toMatchObject({
      ok: false,
      firstInvalid: { seq: Number(next.seq), reason: "broken_link" },
    });
    expect((await t.call("GET", "/v1/audit/verify", other.admin)).body.ok).toBe(true);
  });
});

describe("appendAuditEntries", () => {
  it("chains a batch in order under one lock while single appends run beside it", async () => {
    const db = t.deps.database.db;
    const entry = (subjectId: string) => ({
      organizationId: acme.id,
      actor: "test",
      action: "test.batched",
      subjectType: "test",
      subjectId,
    });
    await Promise.all([
      db.transaction((tx) =>
        appendAuditEntries(tx, t.clock, ["b-1", "b-2", "b-3", "b-4"].map(entry)),
      ),
      ...["s-1", "s-2", "s-3"].map((id) => appendAudit(db, t.clock, entry(id))),
      appendAuditEntries(db, t.clock, []),
    ]);
    const rows = await db
      .select()
      .from(auditLog)
      .where(eq(auditLog.action, "test.batched"))
      .orderBy(asc(auditLog.seq));
    const batch = rows.filter((row) => row.subjectId.startsWith("b-"));
    expect(batch.map((row) => row.subjectId)).toEqual(["b-1", "b-2", "b-3", "b-4"]);
    // Consecutive, each linked to the one before.
    expect(batch.map((row) => row.seq - batch[0]!.seq)).toEqual([0, 1, 2, 3]);
    for (let i = 1; i < batch.length; i++) expect(batch[i]!.prevHash).toBe(batch[i - 1]!.hash);
    expect(rows).toHaveLength(7);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true });
  });
});

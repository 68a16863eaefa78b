import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "./testing/test-app";

/**
 * A database error must be logged by its code and constraint, never with the failed query's
 * parameters: drizzle's error message lists them, and they can carry secrets. The database is
 * made to fail on purpose (a trigger refusing inserts, a constraint the API never expects to
 * break), with a recognisable value among the parameters.
 */
let t: TestApp;
const MARKER = "kw-secret-marker-7f3a9c";

beforeAll(async () => {
  t = await createTestApp();
  const sql = t.deps.database.sql;
  await sql`create function refuse_marked_rows() returns trigger language plpgsql as $$
    begin
      if new.name like 'kw-secret-marker-%' then
        raise exception 'refused row %', new.name;
      end if;
      return new;
    end $$`;
  await sql`create trigger refuse_marked_tokens before insert on api_tokens
    for each row execute function refuse_marked_rows()`;
  await sql`alter table sandbox_profiles add constraint no_marked_names
    check (name not like 'kw-secret-marker-%')`;
});

afterAll(async () => {
  await t.close();
});

function errorLines(): Record<string, unknown>[] {
  return t.logger.lines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.level === "error");
}

describe("logging a failed query", () => {
  it("names the SQLSTATE and never the parameters or the database's message", async () => {
    const acme = await t.createOrganization("Acme");
    const token = await t.call("POST", "/v1/api-tokens", acme.admin, {
      name: MARKER,
      role: "viewer",
    });
    expect(token.status).toBe(500);
    const profile = await t.call("POST", "/v1/sandbox-profiles", acme.member, { name: MARKER });
    expect(profile.status).toBe(500);

    for (const line of t.logger.lines) {
      expect(line).not.toContain(MARKER);
      expect(line).not.toContain("Failed query");
      expect(line).not.toContain("params:");
    }
    const [raised, checked] = errorLines();
    expect(raised).toMatchObject({
      msg: "unhandled error",
      requestId: token.body.error.requestId,
      error: "PostgresError",
      code: "P0001",
      class: "P0",
    });
    expect(checked).toMatchObject({
      msg: "unhandled error",
      requestId: profile.body.error.requestId,
      error: "PostgresError",
      code: "23514",
      class: "23",
      constraint: "no_marked_names",
      table: "sandbox_profiles",
    });
  });
});

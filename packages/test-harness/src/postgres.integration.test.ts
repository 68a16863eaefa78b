import { postgresClient } from "@keyway/db";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "./test-database";

describe("createTestDatabase", () => {
  let first: TestDatabase;
  let second: TestDatabase;
  let sqlFirst: postgres.Sql;
  let sqlSecond: postgres.Sql;

  beforeAll(async () => {
    first = await createTestDatabase("harness first");
    second = await createTestDatabase("harness second");
    sqlFirst = postgresClient(first.url, { onnotice: () => {} });
    sqlSecond = postgresClient(second.url, { onnotice: () => {} });
  });

  afterAll(async () => {
    await Promise.all([sqlFirst?.end(), sqlSecond?.end()]);
    await Promise.all([first?.drop(), second?.drop()]);
  });

  it("gives each call its own uniquely named database", () => {
    expect(first.name).toMatch(/^harness_first_[0-9a-f]{12}$/);
    expect(second.name).not.toBe(first.name);
    // Through the server's Unix-domain socket; over TCP on request (a proxy in between).
    expect(first.url).toMatch(
      /^postgres:\/\/.+@127\.0\.0\.1:\d+\/harness_first_[0-9a-f]{12}\?host=%2F/,
    );
    expect(first.tcpUrl).toMatch(/^postgres:\/\/.+@127\.0\.0\.1:\d+\/harness_first_[0-9a-f]{12}$/);
  });

  it("stores and reads rows", async () => {
    await sqlFirst`CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`;
    await sqlFirst`INSERT INTO notes (body) VALUES ('hello'), ('world')`;

    const rows = await sqlFirst`SELECT body FROM notes ORDER BY id`;

    expect(rows.map((row) => row.body)).toEqual(["hello", "world"]);
  });

  it("keeps databases isolated from one another", async () => {
    await sqlSecond`CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)`;
    await sqlSecond`INSERT INTO notes (body) VALUES ('only here')`;

    expect((await sqlSecond`SELECT body FROM notes`).map((row) => row.body)).toEqual(["only here"]);
    expect((await sqlFirst`SELECT count(*)::int AS n FROM notes`)[0]?.n).toBe(2);
  });

  it("drops a database even while clients are connected", async () => {
    const scratch = await createTestDatabase("scratch");
    const sql = postgresClient(scratch.url, { onnotice: () => {} });
    await sql`SELECT 1`;

    await scratch.drop();

    const [row] =
      await sqlFirst`SELECT count(*)::int AS n FROM pg_database WHERE datname = ${scratch.name}`;
    expect(row?.n).toBe(0);
    await sql.end({ timeout: 0 }).catch(() => {});
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { describe, expect, it } from "vitest";
import { createDatabase, DeadlineExceededError } from "./client";
import { databaseFailureCause, isDatabaseUnavailable } from "./database-failures";
import { getFreePort } from "./free-port";

const PARAMETER = "token-hash-3f9a1c";

describe("database failures", () => {
  it("classifies a refused connection as unavailable and names its cause, not the query", async () => {
    // Nothing listens on the port: the real client's real error, wrapped by drizzle.
    const database = createDatabase(`postgres://u:p@127.0.0.1:${await getFreePort()}/none`, {
      max: 1,
    });
    try {
      const error = await database.db.execute(sql`select ${PARAMETER}`).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(DrizzleQueryError);
      expect(String((error as Error).message)).toContain(PARAMETER);
      expect(isDatabaseUnavailable(error)).toBe(true);
      const cause = databaseFailureCause(error);
      expect(cause.code).toBe("ECONNREFUSED");
      expect(JSON.stringify(cause)).not.toContain(PARAMETER);
      expect(JSON.stringify(cause)).not.toContain("select");
    } finally {
      await database.close();
    }
  });

  it("classifies a server missing from its Unix-domain socket directory as unavailable", async () => {
    // A stopped server removes its socket file: connecting then fails with ENOENT, not ECONNREFUSED.
    const dir = await mkdtemp(join(tmpdir(), "keyway-no-pg-"));
    const database = createDatabase(`postgres://u:p@127.0.0.1:5432/none?host=${dir}`, { max: 1 });
    try {
      const error = await database.db.execute(sql`select ${PARAMETER}`).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(databaseFailureCause(error).code).toBe("ENOENT");
      expect(isDatabaseUnavailable(error)).toBe(true);
    } finally {
      await database.close();
      await rm(dir, { recursive: true });
    }
    // Other missing files are not the database's absence.
    const missingFile = Object.assign(new Error("no such file"), {
      code: "ENOENT",
      syscall: "open",
    });
    expect(isDatabaseUnavailable(missingFile)).toBe(false);
  });

  it("classifies server timeouts and shutdowns as unavailable, and other errors not", () => {
    // What drizzle throws for a server error: postgres.js's error (SQLSTATE in `code`) as cause.
    const wrapped = (code: string) =>
      new DrizzleQueryError(
        "select 1",
        [PARAMETER],
        Object.assign(new Error("m"), { name: "PostgresError", code }),
      );
    for (const code of ["57014", "57P01", "57P03", "25P03", "25P04", "55P03", "08006"]) {
      expect(isDatabaseUnavailable(wrapped(code)), code).toBe(true);
    }
    for (const code of ["23505", "22P02", "42P01", "40001"]) {
      expect(isDatabaseUnavailable(wrapped(code)), code).toBe(false);
    }
    expect(isDatabaseUnavailable(new DeadlineExceededError())).toBe(true);
    expect(isDatabaseUnavailable(new TypeError("x"))).toBe(false);
    expect(databaseFailureCause(wrapped("23505"))).toEqual({
      name: "PostgresError",
      code: "23505",
      message: "m",
    });
  });
});

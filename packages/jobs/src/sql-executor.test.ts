import { PgDialect } from "drizzle-orm/pg-core";
import { describe, expect, it } from "vitest";
import { toParameter, withParameters } from "./sql-executor";

const dialect = new PgDialect();

describe("withParameters", () => {
  it("binds each placeholder, repeated ones too, in order of appearance", () => {
    const query = dialect.sqlToQuery(
      withParameters("select $1::int, $2 as name, right($2, 1) where $1 > 0", [7, "x"]),
    );
    expect(query.sql).toBe("select $1::int, $2 as name, right($3, 1) where $4 > 0");
    expect(query.params).toEqual([7, "x", "x", 7]);
  });

  it("passes text without values through untouched (multi-statement migrations)", () => {
    expect(dialect.sqlToQuery(withParameters("create table a(); create table b();", [])).sql).toBe(
      "create table a(); create table b();",
    );
  });

  it("refuses a placeholder without a value", () => {
    expect(() => withParameters("select $2", [1])).toThrow("$2");
  });
});

describe("toParameter", () => {
  it("sends values as node-postgres would", () => {
    expect(toParameter({ a: 1 })).toBe('{"a":1}');
    expect(toParameter(["a", 'b"c', null])).toBe('{"a","b\\"c",NULL}');
    expect(toParameter(new Date("2026-01-02T03:04:05Z"))).toBe("2026-01-02T03:04:05.000Z");
    expect(toParameter(undefined)).toBeNull();
    expect(toParameter(5)).toBe(5);
    expect(toParameter(true)).toBe(true);
  });
});

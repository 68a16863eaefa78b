import { describe, expect, it } from "vitest";
import { postgresTcpUrl, postgresUrl, splitHostParameter } from "./connection-url";

const server = { host: "127.0.0.1", port: 5433, user: "app", password: "p@ss/word" };

describe("postgresUrl", () => {
  it("names the socket directory in libpq's host parameter, and keeps the TCP address", () => {
    expect(postgresUrl({ ...server, socketDir: "/tmp/keyway-0-pg5433" }, "keyway")).toBe(
      "postgres://app:p%40ss%2Fword@127.0.0.1:5433/keyway?host=%2Ftmp%2Fkeyway-0-pg5433",
    );
    expect(postgresTcpUrl({ ...server, socketDir: "/tmp/x" }, "keyway")).toBe(
      "postgres://app:p%40ss%2Fword@127.0.0.1:5433/keyway",
    );
    expect(postgresUrl(server, "keyway")).toBe(postgresTcpUrl(server, "keyway"));
  });
});

describe("splitHostParameter", () => {
  it("leaves a URL without a host parameter untouched", () => {
    for (const url of [
      "postgres://app:secret@db.internal:5432/keyway?sslmode=require",
      "postgresql://app@a:1,b:2/keyway",
      "postgres://app:secret@db/keyway?application_name=hostile&options=-chost%3D1",
    ]) {
      expect(splitHostParameter(url)).toEqual({ url, host: undefined });
    }
  });

  it("takes the socket directory out of the URL, keeping the other parameters", () => {
    expect(
      splitHostParameter(
        "postgres://app:p%40ss@127.0.0.1:5433/keyway?host=%2Frun%2Fpg&sslmode=disable",
      ),
    ).toEqual({
      url: "postgres://app:p%40ss@127.0.0.1:5433/keyway?sslmode=disable",
      host: "/run/pg",
    });
  });

  it("reads libpq's forms without a host before the path", () => {
    expect(splitHostParameter("postgresql://app:secret@/keyway?host=/var/run/postgresql")).toEqual({
      url: "postgresql://app:secret@localhost/keyway",
      host: "/var/run/postgresql",
    });
    expect(splitHostParameter("postgres:///keyway?host=/var/run/postgresql")).toEqual({
      url: "postgres://localhost/keyway",
      host: "/var/run/postgresql",
    });
  });

  it("says a URL is invalid without repeating its credentials", () => {
    const attempt = () => splitHostParameter("postgres://app:topsecret@a:1,b:x/keyway?host=/run");
    expect(attempt).toThrow("the database URL is not a valid postgres:// URL");
    try {
      attempt();
    } catch (error) {
      expect(JSON.stringify(error)).not.toContain("topsecret");
      expect(String((error as Error).stack)).not.toContain("topsecret");
    }
  });
});

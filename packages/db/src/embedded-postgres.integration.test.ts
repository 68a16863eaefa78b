import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase } from "./client";
import { postgresClient } from "./connection-url";
import {
  embeddedDatabaseUrl,
  embeddedSocketDir,
  type RunningPostgres,
  startEmbeddedPostgres,
} from "./embedded-postgres";
import { runMigrations } from "./migrate";

/**
 * A supervisor (`pnpm start`) must learn that the embedded server died and start it again on the
 * same data directory and port.
 */
describe("startEmbeddedPostgres", () => {
  let root: string;
  let server: RunningPostgres | undefined;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "keyway-embedded-pg-"));
    // PostgreSQL runs as the `postgres` user when tests run as root; it must traverse this folder.
    await chmod(root, 0o755);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function selectOne(running: RunningPostgres): Promise<number> {
    const sql = postgresClient(running.url("postgres"), { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql<{ one: number }[]>`select 1 as one`;
      return row?.one ?? 0;
    } finally {
      await sql.end();
    }
  }

  it("reports the server's death and starts again on the same data directory", async () => {
    const dataDir = join(root, "data");
    const first = await startEmbeddedPostgres({ dataDir, durable: false });
    server = first;
    expect(first.pid).toBeGreaterThan(0);
    await first.createDatabase("kept");

    process.kill(first.pid ?? 0, "SIGKILL");
    expect(await first.exited).toEqual({ code: null, signal: "SIGKILL" });
    await first.stop(); // a dead server's stop() returns instead of waiting for it forever

    // Its backends notice the postmaster's death and exit; until they have, a new server refuses
    // to start on the same data directory, so a supervisor retries (here: a few times).
    let second: RunningPostgres | undefined;
    for (let attempt = 1; second === undefined; attempt++) {
      try {
        second = await startEmbeddedPostgres({ dataDir, port: first.port, durable: false });
      } catch (error) {
        if (attempt === 10) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    server = second;
    expect(second.port).toBe(first.port);
    // Its clients keep their URL: the socket is where the killed server's was.
    expect(second.url("kept")).toBe(first.url("kept"));
    expect(await selectOne(second)).toBe(1);
    await second.createDatabase("kept", { ifNotExists: true });

    await second.stop();
    expect(await second.exited).toEqual({ code: 0, signal: null });
    server = undefined;
  });

  /** How the session reached the server: PostgreSQL has no server address for a Unix socket. */
  async function transport(url: string): Promise<"unix socket" | "tcp"> {
    const database = createDatabase(url, { max: 1 });
    try {
      const [row] = await database.sql<
        { addr: string | null }[]
      >`select inet_server_addr() as addr`;
      return row?.addr === null ? "unix socket" : "tcp";
    } finally {
      await database.close();
    }
  }

  it("serves its clients through a private Unix-domain socket, and over TCP on request", async () => {
    const running = await startEmbeddedPostgres({ dataDir: join(root, "socket"), durable: false });
    server = running;
    const socketDir = running.socketDir ?? "";
    expect(socketDir).toBe(embeddedSocketDir(running.port));
    expect(running.url("postgres")).toBe(
      `postgres://postgres:postgres@127.0.0.1:${running.port}/postgres?host=${encodeURIComponent(socketDir)}`,
    );
    // What `pnpm start` hands its services before the server is up, and what the CLI uses.
    expect(embeddedDatabaseUrl(running.port, "socket")).toBe(running.url("keyway"));
    expect(embeddedDatabaseUrl(running.port)).toBe(running.tcpUrl("keyway"));
    // Only the server's user (and root) may enter it; as root, that user is `postgres`.
    const dir = await stat(socketDir);
    expect(dir.mode & 0o777).toBe(0o700);
    expect(dir.uid).toBe((await stat(join(root, "socket"))).uid);

    await running.createDatabase("socket_db");
    await runMigrations(running.url("socket_db"));
    expect(await transport(running.url("socket_db"))).toBe("unix socket");
    expect(await transport(running.tcpUrl("socket_db"))).toBe("tcp");

    await running.stop();
    server = undefined;
    expect(existsSync(socketDir)).toBe(false);
  });

  it("refuses a socket directory someone else could enter", async () => {
    const dataDir = join(root, "squatted");
    const first = await startEmbeddedPostgres({ dataDir, durable: false });
    const { port } = first;
    await first.stop();
    const squatted = embeddedSocketDir(port) ?? "";
    await mkdir(squatted, { mode: 0o700 });
    await chmod(squatted, 0o777);
    try {
      await expect(startEmbeddedPostgres({ dataDir, port, durable: false })).rejects.toThrow(
        `PostgreSQL did not start: its socket directory ${squatted} exists but is not a directory private to the server's user`,
      );
    } finally {
      await rm(squatted, { recursive: true, force: true });
    }
  });
});

describe("embeddedSocketDir", () => {
  it("is in the temporary directory, or in /tmp where the socket's path would be too long", () => {
    const saved = process.env.TMPDIR;
    try {
      process.env.TMPDIR = "/var/tmp";
      expect(embeddedSocketDir(5432)).toBe(`/var/tmp/keyway-${process.getuid?.()}-pg5432`);
      // sun_path holds 108 bytes on Linux (104 on macOS), the final NUL included.
      process.env.TMPDIR = `/var/tmp/${"x".repeat(80)}`;
      expect(embeddedSocketDir(5432)).toBe(`/tmp/keyway-${process.getuid?.()}-pg5432`);
      // unix_socket_directories is a comma-separated list.
      process.env.TMPDIR = "/var/tmp/a,b";
      expect(embeddedSocketDir(5432)).toBe(`/tmp/keyway-${process.getuid?.()}-pg5432`);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });
});

import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningPostgres, startEmbeddedPostgres } from "./embedded-postgres";

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
    const sql = postgres(running.url("postgres"), { max: 1, onnotice: () => {} });
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
    expect(await selectOne(second)).toBe(1);
    await second.createDatabase("kept", { ifNotExists: true });

    await second.stop();
    expect(await second.exited).toEqual({ code: 0, signal: null });
    server = undefined;
  });
});

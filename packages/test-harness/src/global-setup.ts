import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunningPostgres, startEmbeddedPostgres } from "@keyway/db";
import type { TestProject } from "vitest/node";

/**
 * Vitest global setup: one embedded PostgreSQL for the whole run, in a temporary directory that is
 * removed at teardown. Tests reach it through `createTestDatabase()`. Set KEYWAY_TEST_PG_LOG=1 to
 * see initdb's and the server's output.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  globalThis.__keywayTestPostgres ??= {
    users: 0,
    server: startTestPostgres(process.env.KEYWAY_TEST_PG_LOG === "1"),
  };
  const shared = globalThis.__keywayTestPostgres;
  shared.users++;
  const { postgres } = await shared.server;
  project.provide("keywayPostgres", {
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    password: postgres.password,
    ...(postgres.socketDir !== undefined ? { socketDir: postgres.socketDir } : {}),
  });

  return async function teardown() {
    shared.users--;
    if (shared.users > 0) return;
    globalThis.__keywayTestPostgres = undefined;
    const { postgres, root } = await shared.server;
    await postgres.stop();
    await rm(root, { recursive: true, force: true });
  };
}

interface TestPostgres {
  postgres: RunningPostgres;
  root: string;
}

// Vitest runs a global setup once per project with tests queued (integration and system may both
// run), loading the file separately for each but in one process: the server is shared through
// this process-wide slot so that a run starts PostgreSQL once.
declare global {
  var __keywayTestPostgres: { users: number; server: Promise<TestPostgres> } | undefined;
}

async function startTestPostgres(log: boolean): Promise<TestPostgres> {
  const root = await mkdtemp(join(tmpdir(), "keyway-test-pg-"));
  // When tests run as root, PostgreSQL runs as the `postgres` user, which must reach the data dir.
  await chmod(root, 0o755);
  try {
    const postgres = await startEmbeddedPostgres({
      dataDir: join(root, "data"),
      durable: false,
      log: log ? (line) => process.stderr.write(`[postgres] ${line}`) : undefined,
    });
    return { postgres, root };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

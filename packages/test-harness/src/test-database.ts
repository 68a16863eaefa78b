import { randomBytes } from "node:crypto";
import {
  createPostgresDatabase,
  dropPostgresDatabase,
  type PostgresServerAddress,
  postgresTcpUrl,
  postgresUrl,
} from "@keyway/db";
import { inject } from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** The run's embedded PostgreSQL, provided by `@keyway/test-harness`'s global setup. */
    keywayPostgres: PostgresServerAddress;
  }
}

export interface TestDatabase {
  name: string;
  /** Through the server's Unix-domain socket, as Keyway's processes reach the embedded server. */
  url: string;
  /** Over TCP: for a test that puts a proxy (`startTcpProxy`) between a client and the server. */
  tcpUrl: string;
  /** Drops the database, disconnecting any clients still connected. */
  drop(): Promise<void>;
}

/**
 * Creates a fresh, uniquely named database on the run's PostgreSQL, for one test file's
 * `beforeAll`. `label` only makes the name recognisable (`<label>_<random>`).
 */
export async function createTestDatabase(label = "test"): Promise<TestDatabase> {
  const server = inject("keywayPostgres");
  if (server === undefined) {
    throw new Error(
      "no test PostgreSQL: run this file in a vitest project whose globalSetup is " +
        "packages/test-harness/src/global-setup.ts (the integration and system projects)",
    );
  }
  const name = uniqueDatabaseName(label);
  await createPostgresDatabase(server, name);
  return {
    name,
    url: postgresUrl(server, name),
    tcpUrl: postgresTcpUrl(server, name),
    drop: () => dropPostgresDatabase(server, name),
  };
}

function uniqueDatabaseName(label: string): string {
  const slug = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 40);
  return `${slug || "test"}_${randomBytes(6).toString("hex")}`;
}

import type postgres from "postgres";
import { type PostgresServerAddress, postgresClient, postgresUrl } from "./connection-url";

export function createPostgresDatabase(
  server: PostgresServerAddress,
  name: string,
  options: { ifNotExists?: boolean } = {},
): Promise<void> {
  return withMaintenanceConnection(server, async (sql) => {
    if (options.ifNotExists) {
      const existing = await sql`SELECT 1 FROM pg_database WHERE datname = ${name}`;
      if (existing.length > 0) return;
    }
    await sql`CREATE DATABASE ${sql(name)}`;
  });
}

/** Drops the database if it exists, disconnecting anyone still connected to it. */
export function dropPostgresDatabase(server: PostgresServerAddress, name: string): Promise<void> {
  return withMaintenanceConnection(server, async (sql) => {
    await sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`;
  });
}

async function withMaintenanceConnection(
  server: PostgresServerAddress,
  run: (sql: postgres.Sql) => Promise<void>,
): Promise<void> {
  const sql = postgresClient(postgresUrl(server, "postgres"), { max: 1, onnotice: () => {} });
  try {
    await run(sql);
  } finally {
    await sql.end();
  }
}

import postgres from "postgres";

/** Where and as whom to reach a PostgreSQL server. */
export interface PostgresServerAddress {
  host: string;
  port: number;
  user: string;
  password: string;
}

export function postgresUrl(server: PostgresServerAddress, database: string): string {
  const credentials = `${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}`;
  const host = server.host.includes(":") ? `[${server.host}]` : server.host;
  return `postgres://${credentials}@${host}:${server.port}/${encodeURIComponent(database)}`;
}

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
  const sql = postgres(postgresUrl(server, "postgres"), { max: 1, onnotice: () => {} });
  try {
    await run(sql);
  } finally {
    await sql.end();
  }
}

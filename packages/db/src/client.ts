import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema";

export type Database = PostgresJsDatabase<typeof schema>;
/** A database handle or an open transaction: services accept either. */
export type Executor = Parameters<Parameters<Database["transaction"]>[0]>[0] | Database;

export interface DatabaseHandle {
  db: Database;
  /** The underlying postgres.js client (LISTEN/NOTIFY, raw SQL in migrations and tests). */
  sql: postgres.Sql;
  close(): Promise<void>;
}

export function createDatabase(url: string, options: { max?: number } = {}): DatabaseHandle {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // Seconds before reconnecting after a failure: postgres.js's default grows to 20 s, and its
    // LISTEN connection uses the same schedule, so a database back after a short outage would go
    // unheard (invalidations lost) for that long. Capped at 2 s.
    backoff: (retries: number) => Math.min(0.1 * 2 ** retries, 2),
    // Keep timestamps as Date objects; bigint sequence numbers stay numbers (mode: "number").
  });
  const db = drizzle(sql, { schema });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}

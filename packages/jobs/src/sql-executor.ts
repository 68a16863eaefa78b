import { type Executor, executePrepared } from "@keyway/db";
import { type SQL, sql } from "drizzle-orm";
import type postgres from "postgres";

/**
 * pg-boss runs its SQL through a `db` object with `executeSql(text, values)` (node-postgres
 * style: `$1…$n` placeholders, `{ rows }` back). This one runs it on a Keyway executor — the
 * database handle, or the caller's open transaction — so a job can be inserted in the same
 * transaction as the rows it is about (CONVENTIONS: "jobs inserted in the caller's transaction"),
 * over the one PostgreSQL client library the platform uses.
 */
export interface PgBossSqlExecutor {
  executeSql(text: string, values?: readonly unknown[]): Promise<{ rows: unknown[] }>;
}

export function sqlExecutor(executor: Executor): PgBossSqlExecutor {
  return {
    async executeSql(text, values = []) {
      // Prepared once per connection (pg-boss's statement texts are fixed): one round trip.
      return { rows: await executePrepared(executor, withParameters(text, values)) };
    },
  };
}

/** pg-boss's own scripts (migrations, maintenance) that open and commit a transaction. */
const SELF_TRANSACTED = /^\s*BEGIN\s*;/i;

/**
 * pg-boss's own statements on the platform's postgres.js pool. Scripts that wrap themselves in
 * `BEGIN … COMMIT` (schema migrations and maintenance, serialised by an advisory lock) run on a
 * reserved connection: postgres.js refuses a `BEGIN` on a shared pool, where the statements that
 * follow could land on another connection.
 */
export function clientExecutor(client: postgres.Sql): PgBossSqlExecutor {
  return {
    async executeSql(text, values = []) {
      const parameters = values.map(toParameter) as postgres.ParameterOrJSON<never>[];
      if (!SELF_TRANSACTED.test(text)) {
        return { rows: [...(await client.unsafe(text, parameters))] };
      }
      const reserved = await client.reserve();
      try {
        return { rows: [...(await reserved.unsafe(text, parameters))] };
      } catch (error) {
        // A failed statement leaves the script's transaction open and aborted on this connection.
        await reserved.unsafe("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        reserved.release();
      }
    },
  };
}

const PLACEHOLDER = /\$(\d+)/g;

/**
 * A drizzle `SQL` for node-postgres-style text: each `$n` becomes a bound parameter holding
 * `values[n-1]` (a placeholder used twice binds the value twice). pg-boss's statements hold no
 * `$` except placeholders (no dollar-quoted bodies in the statements it runs per job).
 */
export function withParameters(text: string, values: readonly unknown[]): SQL {
  if (values.length === 0) return sql.raw(text);
  const chunks: SQL[] = [];
  let last = 0;
  for (const match of text.matchAll(PLACEHOLDER)) {
    const index = Number(match[1]) - 1;
    if (index < 0 || index >= values.length) {
      throw new Error(`placeholder ${match[0]} has no value (${values.length} given)`);
    }
    chunks.push(sql.raw(text.slice(last, match.index)));
    chunks.push(sql`${toParameter(values[index])}`);
    last = match.index + match[0].length;
  }
  chunks.push(sql.raw(text.slice(last)));
  return sql.join(chunks);
}

/**
 * Values as node-postgres would send them (pg-boss is written against it): objects as JSON,
 * arrays as PostgreSQL array literals, dates as ISO instants; everything else unchanged.
 */
export function toParameter(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return arrayLiteral(value);
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "object") return JSON.stringify(value);
  return value;
}

function arrayLiteral(items: readonly unknown[]): string {
  const elements = items.map((item) => {
    if (item === null || item === undefined) return "NULL";
    if (Array.isArray(item)) return arrayLiteral(item);
    const text = typeof item === "object" ? JSON.stringify(item) : String(item);
    return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  });
  return `{${elements.join(",")}}`;
}

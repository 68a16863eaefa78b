import type postgres from "postgres";

/**
 * A PostgreSQL session-level advisory lock, tried once without waiting, held on a connection
 * reserved from the pool for as long as `work` runs. No transaction stays open meanwhile, so
 * `work` may wait on slow I/O (a provider's token endpoint) without holding row locks or tripping
 * `idle_in_transaction_session_timeout`; `work` does its own writes on the pool. Should this
 * process die, the server ends the session and the lock goes with it.
 *
 * Keys are text, hashed by the server (`hashtextextended`) into the 64-bit lock space; callers
 * prefix them with what they protect (`oauth2-refresh:<connection id>`).
 */
export async function withTryAdvisoryLock<T>(
  sql: postgres.Sql,
  key: string,
  work: () => Promise<T>,
): Promise<{ acquired: true; value: T } | { acquired: false }> {
  const connection = await sql.reserve();
  try {
    const [row] = await connection<{ locked: boolean }[]>`
      select pg_try_advisory_lock(hashtextextended(${key}, 0)) as locked`;
    if (!row?.locked) return { acquired: false };
    try {
      return { acquired: true, value: await work() };
    } finally {
      await connection`select pg_advisory_unlock(hashtextextended(${key}, 0))`;
    }
  } finally {
    connection.release();
  }
}

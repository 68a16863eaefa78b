import { randomBytes } from "node:crypto";
import { type SQL, sql as sqlText } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import { postgresClient } from "./connection-url";
import * as schema from "./schema";

export type Database = PostgresJsDatabase<typeof schema>;
/** A database handle or an open transaction: services accept either. */
export type Executor = Parameters<Parameters<Database["transaction"]>[0]>[0] | Database;

const dialect = new PgDialect();

/**
 * Runs `query` on `executor` (a handle or an open transaction) as a statement prepared once per
 * pooled connection, and answers its rows (JSON columns parsed).
 *
 * Why: drizzle runs every query unnamed (postgres.js `prepare: false`), and postgres.js sends an
 * unnamed statement that has parameters in two round trips (Parse/Describe, wait, then
 * Bind/Execute), which PostgreSQL parses and plans again each time. For a hot statement that is
 * two round trips instead of one and the planning of a large statement on every call
 * (webhook ingest's batch inserts: `pnpm bench:webhooks`, docs/benchmarks.md). Only for
 * statements whose text never changes (values as one JSON parameter, never a list of bound
 * values): each distinct text stays prepared on each connection for the connection's life.
 */
export async function executePrepared<Row = Record<string, unknown>>(
  executor: Executor,
  query: SQL,
): Promise<Row[]> {
  const { sql, params } = dialect.sqlToQuery(query);
  const rows = await clientOf(executor).unsafe(sql, params as postgres.ParameterOrJSON<never>[], {
    prepare: true,
  });
  return [...rows] as Row[];
}

/**
 * The postgres.js client under a drizzle handle or transaction (the transaction's own, so the
 * statement joins it). drizzle keeps it on its session, which is not public API: checked, so a
 * drizzle upgrade that moves it fails every caller's tests at once rather than misbehaving.
 */
function clientOf(executor: Executor): postgres.Sql {
  const client = (executor as unknown as { session?: { client?: unknown } }).session?.client;
  if (typeof client !== "function" || !("unsafe" in client)) {
    throw new Error("executePrepared: no postgres.js client under this drizzle executor");
  }
  return client as postgres.Sql;
}

/**
 * Bounds on every connection of a handle. A value of 0 turns a server-side bound off; absent
 * values leave PostgreSQL's own default (no limit), except `connectMs`.
 */
export interface DatabaseTimeouts {
  /** Reaching the server and logging in (postgres.js `connect_timeout`). Default 10 s. */
  connectMs?: number;
  /** Longest statement (`statement_timeout`), a backstop for work outside any request. */
  statementMs?: number;
  /** Longest wait for a lock (`lock_timeout`). */
  lockMs?: number;
  /** A transaction idle this long is ended by the server (`idle_in_transaction_session_timeout`). */
  idleInTransactionMs?: number;
}

export interface DatabaseHandle {
  /**
   * The handle with no deadline: for work outside any request (sealer, jobs, worker, migrations,
   * tests' fixtures). Request code uses `bound(deadline)` instead.
   */
  db: Database;
  /** The underlying postgres.js client (LISTEN/NOTIFY, raw SQL in migrations and tests). */
  sql: postgres.Sql;
  /**
   * `db` under a deadline, an instant on the `performance.now()` clock: a transaction begun on
   * the returned view (`transaction`) never commits after it. The deadline is checked before
   * BEGIN and before COMMIT (`DeadlineExceededError`, the transaction rolls back), and the server
   * is told to end the transaction itself should the COMMIT reach it only after the deadline — as
   * when the server is frozen while the COMMIT waits in its socket, and resumes after the caller
   * was told the request failed. `undefined` answers `db` itself (no deadline).
   *
   * The deadline travels explicitly (no `AsyncLocalStorage`: on Node 20 its first use turns on
   * promise hooks for the whole process, ≈ 2.6× the cost of every later await — docs/benchmarks.md).
   * A view costs one object; queries other than `transaction` are `db`'s own.
   */
  bound(deadline: number | undefined): Database;
  /** Whether the server answers a trivial query within `timeoutMs`. Never throws. */
  ping(timeoutMs: number): Promise<boolean>;
  /**
   * This handle's server connections by state (`active`, `idle`, `idle in transaction`, …), from
   * `pg_stat_activity`: every handle tags its connections with an `application_name` of its own.
   * The query takes a connection itself (it counts as one `active`). For the metrics scrape.
   */
  connectionStates(): Promise<{ state: string; count: number }[]>;
  close(): Promise<void>;
}

/** A transaction was asked to begin or commit after its deadline; nothing was committed. */
export class DeadlineExceededError extends Error {
  override readonly name = "DeadlineExceededError";
  readonly code = "DEADLINE_EXCEEDED";
  constructor() {
    super("the request's deadline passed before its transaction could commit");
  }
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export function createDatabase(
  url: string,
  options: { max?: number; timeouts?: DatabaseTimeouts; applicationName?: string } = {},
): DatabaseHandle {
  const timeouts = options.timeouts ?? {};
  // Unique per handle (replicas share the database, and a process may hold several handles), so
  // `connectionStates` counts this handle's connections only. PostgreSQL keeps 63 bytes.
  const applicationName =
    `${options.applicationName ?? "keyway"}-${randomBytes(4).toString("hex")}`.slice(-63);
  const sql = postgresClient(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // Seconds before reconnecting after a failure: postgres.js's default grows to 20 s, and its
    // LISTEN connection uses the same schedule, so a database back after a short outage would go
    // unheard (invalidations lost) for that long. Capped at 2 s.
    backoff: (retries: number) => Math.min(0.1 * 2 ** retries, 2),
    // Covers the TCP connect and the startup exchange: a frozen server accepts the connection
    // (the kernel completes the handshake) but never answers.
    connect_timeout: (timeouts.connectMs ?? DEFAULT_CONNECT_TIMEOUT_MS) / 1000,
    connection: { ...serverSettings(timeouts), application_name: applicationName },
    // Keep timestamps as Date objects; bigint sequence numbers stay numbers (mode: "number").
  });
  const db = drizzle(sql, { schema });
  const begin: Database["transaction"] = db.transaction.bind(db);
  return {
    db,
    sql,
    bound: (deadline) => (deadline === undefined ? db : boundView(db, begin, deadline)),
    ping: (timeoutMs) => answersWithin(sql, timeoutMs),
    async connectionStates() {
      const rows = await sql<{ state: string; count: number }[]>`
        select coalesce(state, 'unknown') as state, count(*)::int as count
        from pg_stat_activity where application_name = ${applicationName} group by 1`;
      return rows.map((row) => ({ state: row.state, count: row.count }));
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

/** Startup parameters: PostgreSQL applies them to the session before its first query. */
function serverSettings(timeouts: DatabaseTimeouts): Record<string, string> {
  const settings: Record<string, string> = {};
  if (timeouts.statementMs !== undefined) settings.statement_timeout = `${timeouts.statementMs}`;
  if (timeouts.lockMs !== undefined) settings.lock_timeout = `${timeouts.lockMs}`;
  if (timeouts.idleInTransactionMs !== undefined) {
    settings.idle_in_transaction_session_timeout = `${timeouts.idleInTransactionMs}`;
  }
  return settings;
}

/** Milliseconds left before `deadline`, at least 1; throws once it has passed. */
function remainingMs(deadline: number): number {
  const left = Math.ceil(deadline - performance.now());
  if (left <= 0) throw new DeadlineExceededError();
  return left;
}

/**
 * A view of `db` (its prototype) whose `transaction` honours `deadline`; everything else is `db`'s.
 *
 * Why the COMMIT cannot land late: just before it, the transaction sets its own
 * `idle_in_transaction_session_timeout` to the time left. The server arms that timer when it
 * goes idle waiting for the COMMIT, so a COMMIT that reaches it (or that it reads, after being
 * frozen with SIGSTOP) only after the deadline finds the session already ended by the server —
 * a stopped process handles the expired timer's signal before it reads its socket. Works on
 * every supported PostgreSQL version (`transaction_timeout` would need 17). Costs one round trip
 * per transaction with a deadline.
 */
function boundView(db: Database, begin: Database["transaction"], deadline: number): Database {
  const view = Object.create(db) as Database;
  view.transaction = boundedTransaction(begin, deadline);
  return view;
}

function boundedTransaction(
  begin: Database["transaction"],
  deadline: number,
): Database["transaction"] {
  return (run, config) => {
    remainingMs(deadline);
    return begin(async (tx) => {
      // Waiting for a pooled connection may have used up the budget.
      remainingMs(deadline);
      const result = await run(tx);
      const setting = `${remainingMs(deadline)}`;
      // Prepared: one round trip instead of two, on every transaction with a deadline.
      await executePrepared(
        tx,
        sqlText`select set_config('idle_in_transaction_session_timeout', ${setting}, true)`,
      );
      remainingMs(deadline);
      return result;
    }, config);
  };
}

async function answersWithin(sql: postgres.Sql, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const answered = sql`select 1`.then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

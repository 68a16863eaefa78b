import type { Database, DatabaseHandle } from "@keyway/db";
import type { Context, MiddlewareHandler } from "hono";
import type { AppDeps } from "./deps";
import type { AppEnv } from "./env";
import { serviceUnavailable } from "./errors";
import type { Logger } from "./logger";

/**
 * Every request is answered within `timeoutMs` (`api.request_timeout_ms`): past it the caller
 * gets 503 `service_unavailable` even when the handler is still waiting on a frozen database.
 * The handler is not cancelled (JavaScript cannot), but the database it is handed is bound by the
 * same deadline (`DatabaseHandle.bound`: `c.var.db`, `requestDeps`), so a transaction it begins
 * never commits after the caller was told the request failed. Event streams return their
 * response at once and are not cut.
 *
 * The deadline travels explicitly, never in `AsyncLocalStorage`: on Node 20 one `run` turns on
 * promise hooks for the whole process (every later await ≈ 2.6× dearer; docs/benchmarks.md).
 * Routes are built with `requestScoped(deps)`, whose handle cannot begin a transaction: a request
 * path that reaches `db.transaction` without its deadline throws (and fails its tests) instead of
 * running unbounded.
 */
export interface RequestDeadlineOptions {
  database: Pick<DatabaseHandle, "bound">;
  timeoutMs: number;
  logger: Logger;
}

/**
 * Runs a request's work under its deadline (handed to `work`, an instant on the
 * `performance.now()` clock): rejects with the 503 once `timeoutMs` passed.
 */
export type WithinDeadline = <T>(
  requestId: string,
  work: (deadline: number) => Promise<T>,
) => Promise<T>;

export function createRequestDeadline(
  options: Pick<RequestDeadlineOptions, "timeoutMs" | "logger">,
): WithinDeadline {
  const { timeoutMs, logger } = options;
  return async function withinDeadline<T>(
    requestId: string,
    work: (deadline: number) => Promise<T>,
  ) {
    const deadline = performance.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        logger.warn("request deadline passed", { requestId, timeoutMs });
        reject(serviceUnavailable());
      }, timeoutMs);
    });
    try {
      return await Promise.race([work(deadline), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * The deadline as hono middleware (every route; the webhook front door calls
 * `createRequestDeadline` directly): sets `c.var.deadline` and `c.var.db`, the database bound by it.
 */
export function requestDeadline(options: RequestDeadlineOptions): MiddlewareHandler<AppEnv> {
  const { database } = options;
  const withinDeadline = createRequestDeadline(options);
  return async function requestDeadline(c, next) {
    await withinDeadline(c.get("requestId"), (deadline) => {
      c.set("deadline", deadline);
      c.set("db", database.bound(deadline));
      return next();
    });
  };
}

/** Thrown by `requestScoped` handles: request code began a transaction without its deadline. */
export class UnboundTransactionError extends Error {
  override readonly name = "UnboundTransactionError";
  constructor() {
    super(
      "a request began a transaction on the shared database handle: use the request's own " +
        "(c.var.db, requestDeps), bound by its deadline",
    );
  }
}

/**
 * `deps` as route factories get them: `database.db` serves queries but cannot begin a
 * transaction, and `database.bound` needs a deadline. Background work (sealer, jobs, the
 * invalidation feed) keeps the full handle, built before the routes.
 */
export function requestScoped(deps: AppDeps): AppDeps {
  const { database } = deps;
  const db = Object.create(database.db) as Database;
  db.transaction = () => {
    throw new UnboundTransactionError();
  };
  return {
    ...deps,
    database: {
      ...database,
      db,
      bound(deadline) {
        if (deadline === undefined) throw new UnboundTransactionError();
        return database.bound(deadline);
      },
    },
  };
}

/** `deps` for one request's services: `database.db` is the request's, bound by its deadline. */
export function requestDeps(deps: AppDeps, c: Context<AppEnv>): AppDeps {
  return { ...deps, database: { ...deps.database, db: c.get("db") } };
}

import type { DatabaseHandle } from "@keyway/db";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./env";
import { serviceUnavailable } from "./errors";
import type { Logger } from "./logger";

/**
 * Every request is answered within `timeoutMs` (`api.request_timeout_ms`): past it the caller
 * gets 503 `service_unavailable` even when the handler is still waiting on a frozen database.
 * The handler is not cancelled (JavaScript cannot), but it runs under the same deadline in the
 * database layer (`withDeadline`), so a transaction it begins never commits after the caller was
 * told the request failed. Event streams return their response at once and are not cut.
 */
export interface RequestDeadlineOptions {
  database: Pick<DatabaseHandle, "withDeadline">;
  timeoutMs: number;
  logger: Logger;
}

/** Runs a request's work under its deadline: rejects with the 503 once `timeoutMs` passed. */
export type WithinDeadline = <T>(requestId: string, work: () => Promise<T>) => Promise<T>;

export function createRequestDeadline(options: RequestDeadlineOptions): WithinDeadline {
  const { database, timeoutMs, logger } = options;
  return async function withinDeadline<T>(requestId: string, work: () => Promise<T>) {
    const deadline = performance.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        logger.warn("request deadline passed", { requestId, timeoutMs });
        reject(serviceUnavailable());
      }, timeoutMs);
    });
    try {
      return await Promise.race([database.withDeadline(deadline, work), expired]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** The deadline as hono middleware (every route; the webhook front door calls it directly). */
export function requestDeadline(options: RequestDeadlineOptions): MiddlewareHandler<AppEnv> {
  const withinDeadline = createRequestDeadline(options);
  return async function requestDeadline(c, next) {
    await withinDeadline(c.get("requestId"), next);
  };
}

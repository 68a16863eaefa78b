import type { SpentAssertionStore } from "@keyway/crypto";
import { type Database, spentGatewayAssertions } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { lt, sql } from "drizzle-orm";
import type { Logger } from "../logger";

/** How often each replica deletes the ids no assertion can need any more. */
export const SPENT_ASSERTION_PRUNE_INTERVAL_MS = 60_000;

/**
 * Spent gateway-assertion ids in PostgreSQL (`spent_gateway_assertions`), shared by every API
 * replica: an assertion accepted by one replica is refused as a replay by all of them (SPEC §6.8).
 *
 * A claim is one statement, `INSERT … ON CONFLICT DO NOTHING RETURNING`, on the primary key: no
 * row back means another request (on any replica) claimed the id first. Its commit does not wait
 * for the disk (see `claim`). The request path never
 * deletes; at most once per `pruneIntervalMs` a claim also starts, without waiting for it, a
 * delete of the rows past `forget_after` (indexed), so the table stays at about one lifetime's
 * worth of assertions whichever replicas run. A failed prune is logged and retried next interval.
 */
export function createPostgresSpentAssertions(
  deps: { db: Database; clock: Clock; logger: Pick<Logger, "warn"> },
  options: { pruneIntervalMs?: number } = {},
): SpentAssertionStore {
  const interval = options.pruneIntervalMs ?? SPENT_ASSERTION_PRUNE_INTERVAL_MS;
  let nextPruneMs = 0;

  function pruneIfDue(now: Date): void {
    if (now.getTime() < nextPruneMs) return;
    nextPruneMs = now.getTime() + interval;
    deps.db
      .delete(spentGatewayAssertions)
      .where(lt(spentGatewayAssertions.forgetAfter, now))
      .catch((error: unknown) => {
        deps.logger.warn("could not prune spent gateway assertions", {
          error: error instanceof Error ? error.name : "unknown",
        });
      });
  }

  return {
    async claim(gatewayId, jti, forgetAfter) {
      // One statement, so its own transaction, committed without waiting for the WAL flush:
      // `set_config(…, true)` lasts until that transaction's end, its commit included.
      // `pnpm bench:resolve` showed a synchronous commit here adding an fsync (~2 ms on the
      // development machine, far more under load) to every internal request. What it risks: a
      // PostgreSQL crash (not a clean stop) loses the claims of its last ~0.6 s
      // (3 × wal_writer_delay), so an assertion captured in that window could be used once
      // more within its remaining lifetime (≤ 60 s).
      const claimed = await deps.db.execute<{ jti: string }>(sql`
        with asynchronous as (select set_config('synchronous_commit', 'off', true))
        insert into ${spentGatewayAssertions}
          (${sql.identifier(spentGatewayAssertions.gatewayId.name)},
           ${sql.identifier(spentGatewayAssertions.jti.name)},
           ${sql.identifier(spentGatewayAssertions.forgetAfter.name)})
        select ${gatewayId}, ${jti}, ${forgetAfter.toISOString()}::timestamptz from asynchronous
        on conflict do nothing
        returning ${sql.identifier(spentGatewayAssertions.jti.name)}`);
      pruneIfDue(deps.clock.now());
      return claimed.length === 1;
    },
  };
}

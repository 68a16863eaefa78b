import type { SpentAssertionStore } from "@keyway/crypto";
import { type DatabaseHandle, spentGatewayAssertions } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { lt } from "drizzle-orm";
import type { Logger } from "../logger";
import { createStatementBatcher } from "../statement-batcher";

/** How often each replica deletes the ids no assertion can need any more. */
export const SPENT_ASSERTION_PRUNE_INTERVAL_MS = 60_000;

/**
 * Spent gateway-assertion ids in PostgreSQL (`spent_gateway_assertions`), shared by every API
 * replica: an assertion accepted by one replica is refused as a replay by all of them (SPEC §6.8).
 *
 * A claim is an `INSERT … ON CONFLICT DO NOTHING RETURNING` on the primary key: no row back means
 * another request (on any replica) claimed the id first. Claims arriving together share one
 * statement (`createStatementBatcher`); within one, the first claim of an id wins and the others
 * are replays. Its commit does not wait for the disk (see `insertClaims`). The request path
 * never deletes; at most once per `pruneIntervalMs` a claim also starts, without waiting for it,
 * a delete of the rows past `forget_after` (indexed), so the table stays at about one lifetime's
 * worth of assertions whichever replicas run. A failed prune is logged and retried next interval.
 */
export function createPostgresSpentAssertions(
  deps: {
    database: Pick<DatabaseHandle, "db" | "sql">;
    clock: Clock;
    logger: Pick<Logger, "warn">;
  },
  options: { pruneIntervalMs?: number } = {},
): SpentAssertionStore {
  const interval = options.pruneIntervalMs ?? SPENT_ASSERTION_PRUNE_INTERVAL_MS;
  const { db, sql } = deps.database;
  let nextPruneMs = 0;

  function pruneIfDue(now: Date): void {
    if (now.getTime() < nextPruneMs) return;
    nextPruneMs = now.getTime() + interval;
    db.delete(spentGatewayAssertions)
      .where(lt(spentGatewayAssertions.forgetAfter, now))
      .catch((error: unknown) => {
        deps.logger.warn("could not prune spent gateway assertions", {
          error: error instanceof Error ? error.name : "unknown",
        });
      });
  }

  const claims = createStatementBatcher<Claim, boolean>({
    async run(batch) {
      const keys = batch.map((claim) => `${claim.gatewayId}\u001f${claim.jti}`);
      // Each id once per statement: its first claim in the batch is the one that may win.
      const first = new Map<string, number>();
      keys.forEach((key, i) => {
        if (!first.has(key)) first.set(key, i);
      });
      const unique = [...first.values()].map((i) => batch[i] as Claim);
      const inserted = new Set(
        (await insertClaims(sql, unique)).map((row) => `${row.gateway_id}\u001f${row.jti}`),
      );
      return keys.map((key, i) => first.get(key) === i && inserted.has(key));
    },
  });

  return {
    async claim(gatewayId, jti, forgetAfter) {
      const claimed = await claims.submit({ gatewayId, jti, forgetAfter });
      pruneIfDue(deps.clock.now());
      return claimed;
    },
  };
}

interface Claim {
  gatewayId: string;
  jti: string;
  forgetAfter: Date;
}

/**
 * One statement, so its own transaction, committed without waiting for the WAL flush:
 * `set_config(…, true)` lasts until that transaction's end, its commit included.
 * `pnpm bench:resolve` showed a synchronous commit here adding an fsync (~2 ms on the
 * development machine, far more under load) to every internal request. What it risks: a
 * PostgreSQL crash (not a clean stop) loses the claims of its last ~0.6 s (3 × wal_writer_delay),
 * so an assertion captured in that window could be used once more within its remaining lifetime
 * (≤ 60 s). The claims travel as one JSON parameter: one prepared statement text whatever their
 * number.
 */
function insertClaims(sql: DatabaseHandle["sql"], batch: readonly Claim[]) {
  const rows = batch.map((claim) => ({
    gateway_id: claim.gatewayId,
    jti: claim.jti,
    forget_after: claim.forgetAfter.toISOString(),
  }));
  return sql<{ gateway_id: string; jti: string }[]>`
    with asynchronous as (select set_config('synchronous_commit', 'off', true))
    insert into spent_gateway_assertions (gateway_id, jti, forget_after)
    select claim.gateway_id, claim.jti, claim.forget_after
    from asynchronous, json_to_recordset(${JSON.stringify(rows)}::json)
      as claim(gateway_id text, jti text, forget_after timestamptz)
    on conflict do nothing
    returning gateway_id, jti`;
}

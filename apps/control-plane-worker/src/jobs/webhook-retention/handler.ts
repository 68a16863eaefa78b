import {
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookEventPayload,
  webhookEvents,
  webhookRedeliveries,
} from "@keyway/db";
import { and, asc, eq, inArray, isNotNull, lt, notExists, sql } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";

/** The `webhooks.*` retention settings (packages/config). */
export interface WebhookRetentionSettings {
  rawBodyRetentionDays: number;
  /** Floor under `eventRetentionDays`: delivery ids are deduplicated at least this long. */
  dedupeRetentionHours: number;
  eventRetentionDays: number;
  attemptRetentionDays: number;
  /** Rows one statement touches; each batch commits on its own. */
  batchSize: number;
}

export type WebhookRetentionDeps = Pick<WorkerDeps, "database" | "clock" | "logger"> & {
  settings: { retention: WebhookRetentionSettings };
};

export interface RetentionOutcome {
  rawBodiesRemoved: number;
  attemptsDeleted: number;
  eventsDeleted: number;
  redeliveryRecordsDeleted: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * The webhook retention job (SPEC §8), cutoffs taken from the clock once per run:
 * 1. delivery attempt records older than `attemptRetentionDays` are deleted (the delivery keeps
 *    its status, attempt count and last error);
 * 2. raw bodies of events older than `rawBodyRetentionDays` are removed; the event row stays;
 * 3. events older than `eventRetentionDays` — never less than `dedupeRetentionHours`, so a
 *    provider's redelivery within that window is still recognised — are deleted with their
 *    deliveries and attempts (foreign keys cascade). A dead-lettered or delivered delivery goes
 *    with its event: its state is kept exactly as long as the event. An event with a delivery
 *    still `pending` (a replay through the API) is kept until that delivery settles;
 * 4. GitHub redelivery requests as old as the events are forgotten: the reconciliation window
 *    (at most 72 h) never reaches back that far.
 *
 * Every statement touches at most `batchSize` rows and commits on its own, so a run never holds
 * locks for long; rows another transaction holds (an event being processed) are skipped until
 * the next run. Running twice, or concurrently, removes nothing more than once.
 */
export async function runWebhookRetention(deps: WebhookRetentionDeps): Promise<RetentionOutcome> {
  const { retention } = deps.settings;
  const now = deps.clock.now().getTime();
  const attemptCutoff = new Date(now - retention.attemptRetentionDays * DAY_MS);
  const rawBodyCutoff = new Date(now - retention.rawBodyRetentionDays * DAY_MS);
  const eventCutoff = new Date(
    now - Math.max(retention.eventRetentionDays * DAY_MS, retention.dedupeRetentionHours * HOUR_MS),
  );
  const { db } = deps.database;
  const limit = retention.batchSize;

  const attemptsDeleted = await inBatches(limit, async () => {
    const batch = db
      .select({ id: webhookDeliveryAttempts.id })
      .from(webhookDeliveryAttempts)
      .where(lt(webhookDeliveryAttempts.startedAt, attemptCutoff))
      .orderBy(asc(webhookDeliveryAttempts.startedAt))
      .limit(limit)
      .for("update", { skipLocked: true });
    return db
      .delete(webhookDeliveryAttempts)
      .where(inArray(webhookDeliveryAttempts.id, batch))
      .returning({ id: webhookDeliveryAttempts.id });
  });

  const rawBodiesRemoved = await inBatches(limit, async () => {
    // Served by the partial index `webhook_events_raw_body_idx` (events that still have one).
    const batch = db
      .select({ id: webhookEvents.id })
      .from(webhookEvents)
      .where(and(isNotNull(webhookEvents.rawBody), lt(webhookEvents.receivedAt, rawBodyCutoff)))
      .orderBy(asc(webhookEvents.receivedAt))
      .limit(limit)
      .for("update", { skipLocked: true });
    return (
      db
        .update(webhookEvents)
        // A payload stored as the body itself (`payloadInBody`) is written out first.
        .set({ rawBody: null, payload: webhookEventPayload, payloadInBody: false })
        .where(inArray(webhookEvents.id, batch))
        .returning({ id: webhookEvents.id })
    );
  });

  const eventsDeleted = await inBatches(limit, async () => {
    const pending = db
      .select({ one: sql`1` })
      .from(webhookDeliveries)
      .where(
        and(
          eq(webhookDeliveries.eventId, webhookEvents.id),
          eq(webhookDeliveries.status, "pending"),
        ),
      );
    const batch = db
      .select({ id: webhookEvents.id })
      .from(webhookEvents)
      .where(and(lt(webhookEvents.receivedAt, eventCutoff), notExists(pending)))
      .orderBy(asc(webhookEvents.receivedAt))
      .limit(limit)
      .for("update", { skipLocked: true });
    return db
      .delete(webhookEvents)
      .where(inArray(webhookEvents.id, batch))
      .returning({ id: webhookEvents.id });
  });

  const redeliveryRecordsDeleted = await inBatches(limit, async () => {
    const batch = db
      .select({
        targetId: webhookRedeliveries.targetId,
        externalDeliveryId: webhookRedeliveries.externalDeliveryId,
      })
      .from(webhookRedeliveries)
      .where(lt(webhookRedeliveries.requestedAt, eventCutoff))
      .limit(limit);
    return db
      .delete(webhookRedeliveries)
      .where(
        inArray(
          sql`(${webhookRedeliveries.targetId}, ${webhookRedeliveries.externalDeliveryId})`,
          batch,
        ),
      )
      .returning({ targetId: webhookRedeliveries.targetId });
  });

  const outcome = { rawBodiesRemoved, attemptsDeleted, eventsDeleted, redeliveryRecordsDeleted };
  if (Object.values(outcome).some((count) => count > 0)) {
    deps.logger.info("webhook retention removed expired data", outcome);
  }
  return outcome;
}

/** Runs `batch` until it touches fewer than `limit` rows; returns how many it touched. */
async function inBatches(limit: number, batch: () => Promise<unknown[]>): Promise<number> {
  let total = 0;
  for (;;) {
    const rows = await batch();
    total += rows.length;
    if (rows.length < limit) return total;
  }
}

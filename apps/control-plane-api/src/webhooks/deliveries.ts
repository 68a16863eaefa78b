import {
  type Executor,
  newId,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookSubscriptions,
} from "@keyway/db";
import { type JobQueue, webhookDeliverQueue } from "@keyway/jobs";
import { and, asc, eq, inArray, type SQLWrapper, sql } from "drizzle-orm";
import type { DeliveryResponse } from "./schemas";

/**
 * Deliveries of events to subscriptions (SPEC §8), the rows both the worker (fan-out, attempts)
 * and the API (replay) write. A delivery is one event for one subscription (unique); each attempt
 * after the first is one `webhook-deliver` job carrying the attempt number it makes, enqueued in
 * the transaction that makes the attempt due; the first is made by the worker's fan-out job
 * (or, for an API replay, by a job too), so a delivery is never pending without a job to move it
 * on.
 */

type DeliveryRow = typeof webhookDeliveries.$inferSelect;
type AttemptRow = typeof webhookDeliveryAttempts.$inferSelect;

/** A delivery of an event to a subscription and the job for its first attempt (if new). */
export async function createDelivery(
  jobs: JobQueue,
  tx: Executor,
  input: DeliveryInput,
): Promise<string | undefined> {
  const [id] = await insertDeliveries(tx, [input]);
  if (id !== undefined) await queueAttempt(jobs, tx, { deliveryId: id, attempt: 1 });
  return id;
}

export interface DeliveryInput {
  eventId: string;
  subscriptionId: string;
  organizationId: string;
  now: Date;
}

/**
 * Deliveries without a job: the worker's fan-out, which makes their first attempts itself and
 * queues a job only for those it could not make (SPEC §8 at-least-once: the fan-out's job is
 * completed only once each first attempt is recorded or queued). The ids of those created.
 */
export async function insertDeliveries(
  tx: Executor,
  inputs: readonly DeliveryInput[],
): Promise<string[]> {
  if (inputs.length === 0) return [];
  const rows = inputs.map((input) => ({
    id: newId("webhookDelivery", input.now),
    subscription_id: input.subscriptionId,
    event_id: input.eventId,
    organization_id: input.organizationId,
    now: input.now.toISOString(),
  }));
  // The rows as one JSON parameter: a multi-row insert binds each value as its own parameter,
  // and building those was a large part of the worker's CPU per delivery (`pnpm bench:webhooks`).
  const created = await tx.execute<{ id: string }>(sql`
    insert into ${webhookDeliveries} (id, subscription_id, event_id, organization_id, status,
      next_attempt_at, created_at)
    select v.id, v.subscription_id, v.event_id, v.organization_id, 'pending', v.now, v.now
    from json_to_recordset(${JSON.stringify(rows)}::json) as v(id text, subscription_id text,
      event_id text, organization_id text, now timestamptz)
    on conflict (event_id, subscription_id) do nothing
    returning id`);
  return created.map(({ id }) => id);
}

/** The job making attempt `attempt` of a delivery, now or not before `startAfter`. */
export async function queueAttempt(
  jobs: JobQueue,
  tx: Executor,
  job: { deliveryId: string; attempt: number },
  startAfter?: Date,
): Promise<void> {
  await jobs.enqueue(tx, webhookDeliverQueue, job, startAfter ? { startAfter } : {});
}

/**
 * Makes a delivery due again at once (manual replay): whatever its state, it becomes `pending`
 * and the job for its next attempt number is queued. A job queued earlier for that number (a
 * retry waiting for its time) finds the attempt made and does nothing. The caller holds the row
 * locked.
 */
export async function replayDelivery(
  jobs: JobQueue,
  tx: Executor,
  delivery: Pick<DeliveryRow, "id" | "attempts">,
  now: Date,
): Promise<void> {
  await tx
    .update(webhookDeliveries)
    .set({ status: "pending", nextAttemptAt: now })
    .where(eq(webhookDeliveries.id, delivery.id));
  await queueAttempt(jobs, tx, { deliveryId: delivery.id, attempt: delivery.attempts + 1 });
}

/** Deliveries by id with their attempt history, as the API shows them (in the order of `ids`). */
export async function readDeliveries(
  executor: Executor,
  organizationId: string | undefined,
  ids: readonly string[],
): Promise<DeliveryResponse[]> {
  if (ids.length === 0) return [];
  const rows = await executor
    .select()
    .from(webhookDeliveries)
    .where(
      and(
        inArray(webhookDeliveries.id, [...ids]),
        organizationId === undefined
          ? undefined
          : eq(webhookDeliveries.organizationId, organizationId),
      ),
    );
  const attempts = await executor
    .select()
    .from(webhookDeliveryAttempts)
    .where(inArray(webhookDeliveryAttempts.deliveryId, [...ids]))
    .orderBy(asc(webhookDeliveryAttempts.deliveryId), asc(webhookDeliveryAttempts.attempt));
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.flatMap((id) => {
    const row = byId.get(id);
    return row === undefined
      ? []
      : [
          toDelivery(
            row,
            attempts.filter((attempt) => attempt.deliveryId === id),
          ),
        ];
  });
}

function toDelivery(row: DeliveryRow, attempts: readonly AttemptRow[]): DeliveryResponse {
  return {
    id: row.id,
    eventId: row.eventId,
    subscriptionId: row.subscriptionId,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.nextAttemptAt?.toISOString() ?? null,
    lastError: row.lastError,
    responseStatus: row.responseStatus,
    createdAt: row.createdAt.toISOString(),
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
    attemptHistory: attempts.map((attempt) => ({
      attempt: attempt.attempt,
      startedAt: attempt.startedAt.toISOString(),
      durationMs: attempt.durationMs,
      responseStatus: attempt.responseStatus,
      responseBody: attempt.responseBody,
      error: attempt.error,
    })),
  };
}

/** The enabled subscriptions of an organization (fan-out and event replay filter them by type). */
export async function enabledSubscriptions(executor: Executor, organizationId: string) {
  return enabledSubscriptionsOf(executor, [organizationId]);
}

/**
 * The enabled subscriptions of several organizations (their ids, or a subquery selecting them),
 * each with its organization.
 */
export async function enabledSubscriptionsOf(
  executor: Executor,
  organizationIds: readonly string[] | SQLWrapper,
) {
  return executor
    .select({
      id: webhookSubscriptions.id,
      organizationId: webhookSubscriptions.organizationId,
      eventTypes: webhookSubscriptions.eventTypes,
    })
    .from(webhookSubscriptions)
    .where(
      and(
        inArray(
          webhookSubscriptions.organizationId,
          "getSQL" in organizationIds ? organizationIds : [...organizationIds],
        ),
        eq(webhookSubscriptions.enabled, true),
      ),
    );
}

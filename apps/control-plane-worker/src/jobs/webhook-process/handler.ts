import { applyInstallationLifecycle } from "@keyway/control-plane-api/connections/installation-lifecycle";
import {
  createDeliveries,
  type DeliveryInput,
  enabledSubscriptionsOf,
} from "@keyway/control-plane-api/webhooks/deliveries";
import { webhookEvents } from "@keyway/db";
import { subscribesTo } from "@keyway/integrations-core";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";
import { describeJobError } from "../../job-errors";

export type ProcessWebhookDeps = Pick<WorkerDeps, "database" | "jobs" | "clock" | "registry">;

export type ProcessOutcome = "processed" | "ignored" | "skipped";

/**
 * Processes one stored webhook event (SPEC §8 "Processing"): fans it out to the enabled
 * subscriptions of the event's organization whose filter selects its type — one delivery row and
 * one delivery job per subscription, in the same transaction — and marks the event `processed`
 * (or `ignored` when no subscription wants it). An app installation's own events (GitHub
 * `installation.deleted`, `suspend`, `unsuspend`, …) first mark its connection, in the same
 * transaction (`applyInstallationLifecycle`).
 *
 * Idempotent: the event row is locked, an event already processed is skipped, and a delivery per
 * (event, subscription) is unique, so a second run (a crash after commit, another replica) adds
 * nothing.
 */
export async function processWebhookEvent(
  deps: ProcessWebhookDeps,
  eventId: string,
): Promise<ProcessOutcome> {
  const outcomes = await processWebhookEvents(deps, [eventId]);
  return outcomes.get(eventId) ?? "skipped";
}

/**
 * `processWebhookEvent` for the events of a fetched batch of jobs, in one transaction: one
 * statement per step for all of them instead of one per event (`pnpm bench:webhooks`: the
 * worker's CPU per delivery is mostly per statement). All or nothing: the worker runs the jobs
 * one by one when it fails.
 */
export async function processWebhookEvents(
  deps: ProcessWebhookDeps,
  eventIds: readonly string[],
): Promise<Map<string, ProcessOutcome>> {
  return deps.database.db.transaction(async (tx) => {
    const outcomes = new Map<string, ProcessOutcome>();
    const events = await tx
      .select({
        id: webhookEvents.id,
        organizationId: webhookEvents.organizationId,
        eventType: webhookEvents.eventType,
        status: webhookEvents.status,
        connectionId: webhookEvents.connectionId,
        externalSubjectId: webhookEvents.externalSubjectId,
      })
      .from(webhookEvents)
      .where(inArray(webhookEvents.id, [...eventIds]))
      // One lock order for every batch: two batches holding the same events never deadlock.
      .orderBy(webhookEvents.id)
      .for("update");
    // Gone (retention) or already settled: nothing to do.
    const due = events.filter(
      (event): event is typeof event & { organizationId: string } =>
        event.organizationId !== null && (event.status === "received" || event.status === "failed"),
    );
    if (due.length === 0) return outcomes;

    for (const event of due) await applyInstallationLifecycle(tx, deps, event);

    const subscriptions = await enabledSubscriptionsOf(tx, [
      ...new Set(due.map((event) => event.organizationId)),
    ]);
    const now = deps.clock.now();
    const deliveries: DeliveryInput[] = [];
    for (const event of due) {
      const matching = subscriptions.filter(
        (s) =>
          s.organizationId === event.organizationId && subscribesTo(s.eventTypes, event.eventType),
      );
      for (const subscription of matching) {
        deliveries.push({
          eventId: event.id,
          subscriptionId: subscription.id,
          organizationId: event.organizationId,
          now,
        });
      }
      outcomes.set(event.id, matching.length > 0 ? "processed" : "ignored");
    }
    // Independent statements: sent together (pipelined on the transaction's connection).
    const settled = (["processed", "ignored"] as const).map((outcome) => {
      const ids = due.filter((event) => outcomes.get(event.id) === outcome).map(({ id }) => id);
      if (ids.length === 0) return undefined;
      return tx
        .update(webhookEvents)
        .set({
          status: outcome,
          processedAt: now,
          lastError: null,
          attempts: sql`${webhookEvents.attempts} + 1`,
        })
        .where(inArray(webhookEvents.id, ids))
        .execute();
    });
    await Promise.all([createDeliveries(deps.jobs, tx, deliveries), ...settled]);
    return outcomes;
  });
}

/**
 * After the last retry pg-boss will make: the event is marked `failed` with the error, so the
 * operator sees it and a provider's redelivery queues it again (ingest re-enqueues failed events).
 * Earlier failures only count the attempt.
 */
export async function recordProcessingFailure(
  deps: Pick<WorkerDeps, "database">,
  eventId: string,
  error: unknown,
  final: boolean,
): Promise<void> {
  await deps.database.db
    .update(webhookEvents)
    .set({
      attempts: sql`${webhookEvents.attempts} + 1`,
      lastError: describeJobError(error),
      ...(final ? { status: "failed" as const } : {}),
    })
    .where(
      and(
        eq(webhookEvents.id, eventId),
        // Settled events keep their state: a late failure report of an earlier run changes nothing.
        sql`${webhookEvents.status} in ('received', 'failed')`,
      ),
    );
}

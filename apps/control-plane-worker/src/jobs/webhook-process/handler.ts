import { applyInstallationLifecycle } from "@keyway/control-plane-api/connections/installation-lifecycle";
import {
  createDelivery,
  enabledSubscriptions,
} from "@keyway/control-plane-api/webhooks/deliveries";
import { webhookEvents } from "@keyway/db";
import { subscribesTo } from "@keyway/integrations-core";
import { and, eq, sql } from "drizzle-orm";
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
  return deps.database.db.transaction(async (tx) => {
    const [event] = await tx
      .select({
        id: webhookEvents.id,
        organizationId: webhookEvents.organizationId,
        eventType: webhookEvents.eventType,
        status: webhookEvents.status,
        connectionId: webhookEvents.connectionId,
        externalSubjectId: webhookEvents.externalSubjectId,
      })
      .from(webhookEvents)
      .where(eq(webhookEvents.id, eventId))
      .for("update");
    // Gone (retention) or already settled: nothing to do.
    if (event === undefined || event.organizationId === null) return "skipped";
    if (event.status !== "received" && event.status !== "failed") return "skipped";

    await applyInstallationLifecycle(tx, deps, event);

    const subscriptions = await enabledSubscriptions(tx, event.organizationId);
    const matching = subscriptions.filter((s) => subscribesTo(s.eventTypes, event.eventType));
    const now = deps.clock.now();
    for (const subscription of matching) {
      await createDelivery(deps.jobs, tx, {
        eventId: event.id,
        subscriptionId: subscription.id,
        organizationId: event.organizationId,
        now,
      });
    }
    const outcome = matching.length > 0 ? "processed" : "ignored";
    await tx
      .update(webhookEvents)
      .set({
        status: outcome,
        processedAt: now,
        lastError: null,
        attempts: sql`${webhookEvents.attempts} + 1`,
      })
      .where(eq(webhookEvents.id, event.id));
    return outcome;
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

import { applyInstallationLifecycle } from "@keyway/control-plane-api/connections/installation-lifecycle";
import {
  type DeliveryInput,
  enabledSubscriptionsOf,
  insertDeliveries,
} from "@keyway/control-plane-api/webhooks/deliveries";
import { webhookEvents } from "@keyway/db";
import { subscribesTo } from "@keyway/integrations-core";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";
import { describeJobError } from "../../job-errors";
import {
  type DeliverWebhookDeps,
  makeFirstAttempts,
  queueFirstAttempts,
} from "../webhook-deliver/handler";

export type FanOutDeps = Pick<WorkerDeps, "database" | "clock" | "registry">;
export type ProcessWebhookDeps = FanOutDeps & DeliverWebhookDeps;

export type ProcessOutcome = "processed" | "ignored" | "skipped";

/**
 * Processes one stored webhook event (SPEC §8 "Processing"), the handler of `webhook-process`
 * jobs: fans it out (`fanOutWebhookEvents`), then makes the first attempt of each delivery it
 * created (`makeFirstAttempts`: only a failed attempt gets a job, its retry). When the attempts
 * cannot be made (a secret that does not decrypt, a database fault), each is handed to a
 * `webhook-deliver` job instead (`queueFirstAttempts`), which fails or succeeds alone.
 *
 * At least once, nothing lost: the job returns — and pg-boss completes it — only once every first
 * attempt is recorded or queued. A worker killed between the fan-out's commit and the attempts'
 * leaves the deliveries `pending` with no attempt; pg-boss hands the job out again once it
 * expires (the queue's expiry covers the delivery timeouts), and the run finds the event
 * processed and makes those attempts (the subscriber may see a message twice).
 */
export async function processWebhookEvent(
  deps: ProcessWebhookDeps,
  eventId: string,
): Promise<ProcessOutcome> {
  const outcomes = await processWebhookEvents(deps, [eventId]);
  return outcomes.get(eventId) ?? "skipped";
}

/**
 * `processWebhookEvent` for the events of a fetched batch of jobs: one fan-out transaction and
 * one transaction of first attempts for all of them (`pnpm bench:webhooks`: the worker's and
 * PostgreSQL's CPU per delivery is mostly per statement and per job). When it throws, the worker
 * runs the jobs one by one.
 */
export async function processWebhookEvents(
  deps: ProcessWebhookDeps,
  eventIds: readonly string[],
): Promise<Map<string, ProcessOutcome>> {
  const { outcomes, created } = await fanOutWebhookEvents(deps, eventIds);
  // Events fanned out by an earlier run (killed before its attempts were recorded) may have
  // deliveries waiting for their first attempt; events fanned out just now have only these.
  const rerun = eventIds.some((id) => !outcomes.has(id));
  if (created === 0 && !rerun) return outcomes;
  try {
    await makeFirstAttempts(deps, eventIds);
  } catch (error) {
    const queued = await queueFirstAttempts(deps, eventIds);
    deps.logger.warn("first delivery attempts failed; queued as jobs", {
      events: eventIds.length,
      queued,
      error: describeJobError(error),
    });
  }
  return outcomes;
}

/**
 * Fans events out, in one transaction for the batch (one statement per step for all of them):
 * to the enabled subscriptions of each event's organization whose filter selects its type — one
 * `pending` delivery per subscription, without a job (the caller makes the first attempts) — and
 * marks each event `processed` (or `ignored` when no subscription wants it). An app
 * installation's own events (GitHub `installation.deleted`, `suspend`, `unsuspend`, …) first mark
 * its connection, in the same transaction (`applyInstallationLifecycle`).
 *
 * Idempotent: the event rows are locked, an event already processed is skipped (no outcome), and
 * a delivery per (event, subscription) is unique, so a second run (a crash after commit, another
 * replica) adds nothing. Committed before any attempt, so no event row stays locked while a
 * subscriber answers (a duplicate ingest of the event waits for that lock).
 */
export async function fanOutWebhookEvents(
  deps: FanOutDeps,
  eventIds: readonly string[],
): Promise<{ outcomes: Map<string, ProcessOutcome>; created: number }> {
  return deps.database.db.transaction(async (tx) => {
    const outcomes = new Map<string, ProcessOutcome>();
    // Sent together (pipelined on the transaction's connection): the subscriptions of the events'
    // organizations need not wait for the lock (an installation lifecycle change below touches
    // connections, not subscriptions).
    const [events, subscriptions] = await Promise.all([
      tx
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
        .for("update"),
      enabledSubscriptionsOf(
        tx,
        tx
          .select({ organizationId: webhookEvents.organizationId })
          .from(webhookEvents)
          .where(inArray(webhookEvents.id, [...eventIds])),
      ),
    ]);
    // Gone (retention) or already settled: nothing to do.
    const due = events.filter(
      (event): event is typeof event & { organizationId: string } =>
        event.organizationId !== null && (event.status === "received" || event.status === "failed"),
    );
    if (due.length === 0) return { outcomes, created: 0 };

    for (const event of due) await applyInstallationLifecycle(tx, deps, event);

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
    const [created] = await Promise.all([insertDeliveries(tx, deliveries), ...settled]);
    return { outcomes, created: created.length };
  });
}

/**
 * After the last retry pg-boss will make: the event is marked `failed` with the error, so the
 * operator sees it and a provider's redelivery queues it again (ingest re-enqueues failed events);
 * deliveries an earlier run created but could neither attempt nor queue are handed to jobs now.
 * Earlier failures only count the attempt.
 */
export async function recordProcessingFailure(
  deps: Pick<WorkerDeps, "database" | "jobs">,
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
  if (final) await queueFirstAttempts(deps, [eventId]);
}

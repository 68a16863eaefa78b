import { appendAudit } from "@keyway/control-plane-api/audit/service";
import { decryptSubscriptionSecret } from "@keyway/control-plane-api/credentials/secret-store";
import { queueAttempt } from "@keyway/control-plane-api/webhooks/deliveries";
import {
  resolveSubscriberAddresses,
  SubscriberAddressError,
} from "@keyway/control-plane-api/webhooks/subscriber-address";
import {
  type Executor,
  newId,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookEvents,
  webhookSubscriptions,
} from "@keyway/db";
import { signStandardWebhook } from "@keyway/integrations-core";
import { and, eq, inArray, sql } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";
import { describeJobError } from "../../job-errors";
import { nextAttemptAt } from "./retry-schedule";
import type { SubscriberAnswer } from "./subscriber-request";

export type DeliverWebhookDeps = Pick<
  WorkerDeps,
  "database" | "jobs" | "keyRing" | "clock" | "random" | "logger" | "settings" | "subscribers"
>;

export type DeliverOutcome = "delivered" | "retrying" | "dead" | "disabled" | "failed" | "skipped";

/** `disabled_reason` of a subscription whose endpoint answered 410 Gone. */
export const DISABLED_GONE = "gone";

const USER_AGENT = "Keyway-Webhooks/1";

/**
 * One attempt of one delivery (SPEC §8 "Delivery to subscribers"), the handler of
 * `webhook-deliver` jobs.
 *
 * The attempt runs inside one transaction that holds the delivery row locked (`for update`) from
 * the check to the record: a second job for the same delivery (pg-boss handing out the job of a
 * worker it thinks dead, a replay) waits, then finds the attempt made and does nothing. A job
 * runs only when the delivery is `pending` and its attempt number is the next one, so attempt
 * numbers never repeat or skip. A worker killed mid-attempt leaves nothing behind (its
 * transaction dies with its connection, releasing the row); pg-boss hands its job out again
 * once it expires and the attempt is made again: at-least-once, the subscriber may see a message
 * twice, with the same `webhook-id`.
 *
 * The subscription is held `for key share` first (before the delivery, the order in which a
 * subscription delete reaches its deliveries), so it cannot be deleted under a running attempt,
 * while updates to it — the API's and this handler's own 410 disabling — go through.
 *
 * Message: `webhook-id` is the event id (the same for every attempt and replay, and for every
 * subscription receiving the event, so subscribers can deduplicate), `webhook-timestamp` the
 * attempt's time, the body `{ type, timestamp, data }` (the event type, when Keyway received it,
 * the event's payload). Signed with the current secret, and with the previous one as a second
 * `v1,` entry while a rotation overlap lasts.
 *
 * Outcome: 2xx → `delivered`; 410 → the subscription is disabled (`gone`) and the delivery
 * `failed`; anything else (another status, a 3xx — redirects are not followed —, a timeout, a
 * refused address) → the next attempt is queued per the schedule, in the same transaction as the
 * record, or after the last one the delivery is `dead`.
 */
export async function deliverWebhook(
  deps: DeliverWebhookDeps,
  job: DeliveryJob,
): Promise<DeliverOutcome> {
  const [outcome] = await deliverWebhooks(deps, [job]);
  return outcome ?? "skipped";
}

export interface DeliveryJob {
  deliveryId: string;
  attempt: number;
}

type SubscriptionRow = typeof webhookSubscriptions.$inferSelect;
interface DeliveryWithEvent {
  delivery: typeof webhookDeliveries.$inferSelect;
  event: { id: string; eventType: string; receivedAt: Date; payload: unknown } | null;
}

/**
 * `deliverWebhook` for the jobs of a fetched batch, in one transaction: the rows of all of them
 * locked in two statements, the attempts made side by side, each recorded as `deliverWebhook`
 * records one (`pnpm bench:webhooks`: per-statement round trips were most of a delivery's CPU).
 * All or nothing: when it throws, the worker runs the jobs one by one (a subscriber may then see
 * a message twice, as at-least-once allows). Two jobs for one delivery are refused (the second
 * must see the first's record), and so run one by one.
 */
export async function deliverWebhooks(
  deps: DeliverWebhookDeps,
  jobs: readonly DeliveryJob[],
): Promise<DeliverOutcome[]> {
  const ids = jobs.map((job) => job.deliveryId);
  if (new Set(ids).size !== ids.length) {
    throw new Error("a batch of delivery jobs holds two jobs for one delivery");
  }
  return deps.database.db.transaction(async (tx) => {
    // Both statements go out together (postgres.js pipelines them on the transaction's
    // connection) and run in this order: subscriptions are locked before their deliveries, and
    // rows in id order, so two batches never wait for each other both ways.
    const [subscriptions, rows] = await Promise.all([
      tx
        .select()
        .from(webhookSubscriptions)
        .where(
          inArray(
            webhookSubscriptions.id,
            tx
              .select({ id: webhookDeliveries.subscriptionId })
              .from(webhookDeliveries)
              .where(inArray(webhookDeliveries.id, ids)),
          ),
        )
        .orderBy(webhookSubscriptions.id)
        .for("key share"),
      // The deliveries with their events (the events are not locked).
      tx
        .select({
          delivery: webhookDeliveries,
          event: {
            id: webhookEvents.id,
            eventType: webhookEvents.eventType,
            receivedAt: webhookEvents.receivedAt,
            payload: webhookEvents.payload,
          },
        })
        .from(webhookDeliveries)
        .leftJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
        .where(inArray(webhookDeliveries.id, ids))
        .orderBy(webhookDeliveries.id)
        .for("update", { of: webhookDeliveries }),
    ]);
    const subscriptionsById = new Map(subscriptions.map((row) => [row.id, row]));
    const rowsById = new Map(rows.map((row) => [row.delivery.id, row]));
    return Promise.all(
      jobs.map((job) => {
        const row = rowsById.get(job.deliveryId);
        const subscription =
          row === undefined ? undefined : subscriptionsById.get(row.delivery.subscriptionId);
        if (row === undefined || subscription === undefined) return "skipped" as const;
        return attemptDelivery(deps, tx, job, subscription, row);
      }),
    );
  });
}

/** One attempt, its delivery and subscription locked by the caller's transaction. */
async function attemptDelivery(
  deps: DeliverWebhookDeps,
  tx: Executor,
  job: DeliveryJob,
  subscription: SubscriptionRow,
  row: DeliveryWithEvent,
): Promise<DeliverOutcome> {
  const { delivery } = row;
  if (delivery.status !== "pending" || delivery.attempts + 1 !== job.attempt) return "skipped";

  if (!subscription.enabled) {
    await tx
      .update(webhookDeliveries)
      .set({
        status: "failed",
        nextAttemptAt: null,
        lastError: `the subscription is disabled (${subscription.disabledReason ?? "disabled"})`,
      })
      .where(eq(webhookDeliveries.id, delivery.id));
    return "failed";
  }
  const { event } = row;
  if (event === null) return "skipped";

  const startedAt = deps.clock.now();
  const body = JSON.stringify({
    type: event.eventType,
    timestamp: event.receivedAt.toISOString(),
    data: event.payload ?? null,
  });
  const secrets = [
    decryptSubscriptionSecret(
      deps.keyRing,
      subscription.id,
      "current",
      subscription.secretCiphertext,
    ),
  ];
  if (
    subscription.previousSecretCiphertext !== null &&
    subscription.previousSecretExpiresAt !== null &&
    subscription.previousSecretExpiresAt.getTime() > startedAt.getTime()
  ) {
    secrets.push(
      decryptSubscriptionSecret(
        deps.keyRing,
        subscription.id,
        "previous",
        subscription.previousSecretCiphertext,
      ),
    );
  }
  const timestamp = Math.floor(startedAt.getTime() / 1000);
  const signatures = secrets.map(
    (secret) => signStandardWebhook({ secret, id: event.id, timestamp, body })["webhook-signature"],
  );
  const answer = await send(deps, subscription.url, body, {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": event.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  });

  // Sent with the delivery's update below (pipelined), awaited with it.
  const attemptRecorded = tx
    .insert(webhookDeliveryAttempts)
    .values({
      id: newId("webhookAttempt", startedAt),
      deliveryId: delivery.id,
      organizationId: delivery.organizationId,
      attempt: job.attempt,
      startedAt,
      durationMs: answer.durationMs,
      responseStatus: answer.status ?? null,
      responseBody: answer.body ?? null,
      error: answer.error ?? null,
    })
    .execute();
  const finishedAt = deps.clock.now();
  const status = answer.status;
  const recorded = {
    attempts: job.attempt,
    responseStatus: status ?? null,
  };
  let outcome: DeliverOutcome;
  if (status !== undefined && status >= 200 && status <= 299) {
    await Promise.all([
      attemptRecorded,
      tx
        .update(webhookDeliveries)
        .set({
          ...recorded,
          status: "delivered",
          deliveredAt: finishedAt,
          nextAttemptAt: null,
          lastError: null,
        })
        .where(eq(webhookDeliveries.id, delivery.id)),
    ]);
    outcome = "delivered";
  } else if (status === 410) {
    await attemptRecorded;
    await tx
      .update(webhookSubscriptions)
      .set({ enabled: false, disabledReason: DISABLED_GONE, updatedAt: finishedAt })
      .where(eq(webhookSubscriptions.id, subscription.id));
    await tx
      .update(webhookDeliveries)
      .set({
        ...recorded,
        status: "failed",
        nextAttemptAt: null,
        lastError: "the endpoint answered 410 Gone; the subscription is disabled",
      })
      .where(eq(webhookDeliveries.id, delivery.id));
    await appendAudit(tx, deps.clock, {
      organizationId: subscription.organizationId,
      actor: "worker",
      action: "webhook_subscription.disabled",
      subjectType: "webhook_subscription",
      subjectId: subscription.id,
      details: { reason: DISABLED_GONE, deliveryId: delivery.id },
    });
    outcome = "disabled";
  } else {
    await attemptRecorded;
    const lastError = answer.error ?? failureOf(status);
    const next = nextAttemptAt(job.attempt, finishedAt, deps.random);
    await tx
      .update(webhookDeliveries)
      .set({
        ...recorded,
        ...(next === undefined ? { status: "dead" as const } : {}),
        nextAttemptAt: next ?? null,
        lastError,
      })
      .where(eq(webhookDeliveries.id, delivery.id));
    if (next !== undefined) {
      await queueAttempt(
        deps.jobs,
        tx,
        { deliveryId: delivery.id, attempt: job.attempt + 1 },
        next,
      );
    }
    outcome = next === undefined ? "dead" : "retrying";
  }
  deps.logger.info("webhook delivery attempt", {
    deliveryId: delivery.id,
    subscriptionId: subscription.id,
    eventId: event.id,
    attempt: job.attempt,
    status: status ?? null,
    durationMs: answer.durationMs,
    outcome,
  });
  return outcome;
}

/** Checks the URL's address (again: DNS may answer differently now), then POSTs to it. */
async function send(
  deps: DeliverWebhookDeps,
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<SubscriberAnswer> {
  const target = new URL(url);
  const settings = deps.settings.webhookDelivery;
  let addresses: Awaited<ReturnType<typeof resolveSubscriberAddresses>>;
  try {
    addresses = await resolveSubscriberAddresses(target, {
      allowPrivate: settings.allowPrivateSubscribers,
    });
  } catch (error) {
    if (!(error instanceof SubscriberAddressError)) throw error;
    return { error: `not sent: ${error.message}`, durationMs: 0 };
  }
  return deps.subscribers.post({
    url: target,
    addresses,
    headers,
    body,
    connectTimeoutMs: settings.connectTimeoutMs,
    responseTimeoutMs: settings.responseTimeoutMs,
  });
}

function failureOf(status: number | undefined): string {
  if (status === undefined) return "no answer";
  if (status >= 300 && status <= 399)
    return `the endpoint answered ${status}; redirects are not followed`;
  return `the endpoint answered ${status}`;
}

/**
 * After a run that threw (a database failure, a secret that no longer decrypts): the error is
 * recorded on the delivery, and once pg-boss gives up on the job the delivery is `failed` — it
 * would otherwise stay pending with no job left to move it. Only while the attempt is still the
 * one the job was for.
 */
export async function recordDeliveryFailure(
  deps: Pick<WorkerDeps, "database">,
  job: { deliveryId: string; attempt: number },
  error: unknown,
  final: boolean,
): Promise<void> {
  await deps.database.db
    .update(webhookDeliveries)
    .set({
      lastError: describeJobError(error),
      ...(final ? { status: "failed" as const, nextAttemptAt: null } : {}),
    })
    .where(
      and(
        eq(webhookDeliveries.id, job.deliveryId),
        eq(webhookDeliveries.status, "pending"),
        sql`${webhookDeliveries.attempts} + 1 = ${job.attempt}`,
      ),
    );
}

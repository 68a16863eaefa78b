import { appendAudit } from "@keyway/control-plane-api/audit/service";
import { decryptSubscriptionSecret } from "@keyway/control-plane-api/credentials/secret-store";
import {
  resolveSubscriberAddresses,
  SubscriberAddressError,
} from "@keyway/control-plane-api/webhooks/subscriber-address";
import {
  type Executor,
  newId,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookEventPayload,
  webhookEvents,
  webhookSubscriptions,
} from "@keyway/db";
import { signStandardWebhook } from "@keyway/integrations-core";
import { webhookDeliverQueue } from "@keyway/jobs";
import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";
import { describeJobError } from "../../job-errors";
import { nextAttemptAt } from "./retry-schedule";
import type { SubscriberAnswer } from "./subscriber-request";

export type DeliverWebhookDeps = Pick<
  WorkerDeps,
  "database" | "jobs" | "keyRing" | "clock" | "random" | "logger" | "settings" | "subscribers"
>;

export type DeliverOutcome =
  | "delivered"
  | "retrying"
  | "dead"
  | "disabled"
  | "failed"
  | "skipped"
  /** A first attempt handed to a job of its own (its subscriber answers slowly). */
  | "queued";

/** `disabled_reason` of a subscription whose endpoint answered 410 Gone. */
export const DISABLED_GONE = "gone";

const USER_AGENT = "Keyway-Webhooks/1";

/**
 * One attempt of one delivery (SPEC §8 "Delivery to subscribers"), the handler of
 * `webhook-deliver` jobs: the attempts after the first (retries on the schedule), replays, and
 * first attempts the fan-out could not make itself (`makeFirstAttempts`).
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
type DeliveryRow = typeof webhookDeliveries.$inferSelect;
interface DeliveryWithEvent {
  delivery: DeliveryRow;
  /** `payload`: the event's payload as JSON text, as PostgreSQL prints it (null when none). */
  event: { id: string; eventType: string; receivedAt: Date; payload: string | null } | null;
}

/**
 * `deliverWebhook` for the jobs of a fetched batch, in one transaction: the rows of all of them
 * locked in two statements, the attempts made side by side, all recorded together
 * (`recordAttempts`). All or nothing: when it throws, the worker runs the jobs one by one (a
 * subscriber may then see a message twice, as at-least-once allows). Two jobs for one delivery
 * are refused (the second must see the first's record), and so run one by one.
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
    const { subscriptionsById, rows } = await lockDeliveries(
      tx,
      inArray(webhookDeliveries.id, ids),
    );
    const rowsById = new Map(rows.map((row) => [row.delivery.id, row]));
    const due = jobs.map((job) => {
      const row = rowsById.get(job.deliveryId);
      const subscription =
        row === undefined ? undefined : subscriptionsById.get(row.delivery.subscriptionId);
      return row === undefined || subscription === undefined
        ? undefined
        : { attempt: job.attempt, subscription, ...row };
    });
    const outcomes = await attemptDeliveries(
      deps,
      tx,
      due.filter((item) => item !== undefined),
    );
    let next = 0;
    return due.map((item) => (item === undefined ? "skipped" : (outcomes[next++] ?? "skipped")));
  });
}

/**
 * The first attempt of every delivery of these events that has none yet (`pending`, 0 attempts),
 * made by the fan-out job itself rather than by a job of its own: two pg-boss jobs per delivery
 * (each inserted, fetched and completed) were most of PostgreSQL's work per delivery
 * (`pnpm bench:webhooks`, docs/benchmarks.md "Webhooks"). Locked, attempted and recorded as
 * `deliverWebhooks` does, in one transaction; only a failed attempt gets a job (its retry, on the
 * schedule). Selected by event rather than by delivery id, so a fan-out job run again after a
 * crash between its fan-out's commit and this one's finds the deliveries it left unattempted.
 * A delivery replayed meanwhile (it has its own job for attempt 1) is attempted once: whichever
 * comes second finds the attempt made.
 *
 * A subscriber that answered slowly or not at all lately (`SubscriberClient.isSlow`) gets its
 * first attempts as jobs instead, made by the `webhook-deliver` workers: inline, it would hold
 * the first attempts of the batch's other events for up to its timeouts.
 *
 * The fan-out fetches large batches (pg-boss's fetch costs about the same for 1 job or 64), so the
 * attempts go out `worker.concurrency` at a time, one group after the other: no more are in
 * flight, however large the batch. A group whose turn comes later than one attempt's timeouts
 * after the first began is not sent: its attempts and the rest are handed to jobs, so the fan-out
 * job ends within its expiry (two attempts' timeouts, `webhookProcessExpirySeconds`).
 */
export async function makeFirstAttempts(
  deps: DeliverWebhookDeps,
  eventIds: readonly string[],
): Promise<DeliverOutcome[]> {
  if (eventIds.length === 0) return [];
  return deps.database.db.transaction(async (tx) => {
    const { subscriptionsById, rows } = await lockDeliveries(tx, unattemptedOf(eventIds));
    const inline: DueAttempt[] = [];
    const queued: string[] = [];
    for (const row of rows) {
      const subscription = subscriptionsById.get(row.delivery.subscriptionId);
      if (subscription === undefined) continue;
      if (subscription.enabled && deps.subscribers.isSlow(new URL(subscription.url))) {
        queued.push(row.delivery.id);
      } else {
        inline.push({ attempt: 1, subscription, ...row });
      }
    }
    const [outcomes] = await Promise.all([
      attemptDeliveries(deps, tx, inline, { inGroups: true }),
      deps.jobs.enqueueMany(
        tx,
        webhookDeliverQueue,
        queued.map((deliveryId) => ({ payload: { deliveryId, attempt: 1 } })),
      ),
    ]);
    return [...outcomes, ...queued.map(() => "queued" as const)];
  });
}

/**
 * Hands the first attempts `makeFirstAttempts` could not make (it threw: a secret that no longer
 * decrypts, a database fault) to one `webhook-deliver` job each, so each fails or succeeds alone
 * with pg-boss's retries and `recordDeliveryFailure`, as any attempt's job does.
 */
export async function queueFirstAttempts(
  deps: Pick<DeliverWebhookDeps, "database" | "jobs">,
  eventIds: readonly string[],
): Promise<number> {
  if (eventIds.length === 0) return 0;
  return deps.database.db.transaction(async (tx) => {
    const rows = await tx
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(unattemptedOf(eventIds));
    await deps.jobs.enqueueMany(
      tx,
      webhookDeliverQueue,
      rows.map(({ id }) => ({ payload: { deliveryId: id, attempt: 1 } })),
    );
    return rows.length;
  });
}

function unattemptedOf(eventIds: readonly string[]) {
  return and(
    inArray(webhookDeliveries.eventId, [...eventIds]),
    eq(webhookDeliveries.status, "pending"),
    eq(webhookDeliveries.attempts, 0),
  );
}

/**
 * The deliveries `where` selects, locked with their subscriptions. Both statements go out
 * together (postgres.js pipelines them on the transaction's connection) and run in this order:
 * subscriptions are locked before their deliveries, and rows in id order, so two batches never
 * wait for each other both ways.
 */
async function lockDeliveries(tx: Executor, where: SQL | undefined) {
  const [subscriptions, rows] = await Promise.all([
    tx
      .select()
      .from(webhookSubscriptions)
      .where(
        inArray(
          webhookSubscriptions.id,
          tx.select({ id: webhookDeliveries.subscriptionId }).from(webhookDeliveries).where(where),
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
          // As text: it goes into the message as it is, not parsed here only to be printed again.
          payload: sql<string | null>`${webhookEventPayload}::text`,
        },
      })
      .from(webhookDeliveries)
      .leftJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
      .where(where)
      .orderBy(webhookDeliveries.id)
      .for("update", { of: webhookDeliveries }),
  ]);
  return {
    subscriptionsById: new Map(subscriptions.map((row) => [row.id, row])),
    rows: rows satisfies DeliveryWithEvent[],
  };
}

/** An attempt to make: the delivery and subscription locked by the caller's transaction. */
interface DueAttempt extends DeliveryWithEvent {
  attempt: number;
  subscription: SubscriptionRow;
}

/** What one attempt changes, recorded with the others of its batch (`recordAttempts`). */
interface AttemptResult {
  outcome: DeliverOutcome;
  due: DueAttempt;
  /** Not sent (its group's turn came too late): the attempt is handed to a job of its own. */
  handedOver?: true;
  /** The row to insert into `webhook_delivery_attempts` (its columns); none when nothing was sent. */
  record?: {
    id: string;
    delivery_id: string;
    organization_id: string;
    attempt: number;
    started_at: string;
    duration_ms: number;
    response_status: number | null;
    response_body: string | null;
    error: string | null;
  };
  /** The delivery's new state; none when it stays as it is. */
  update?: Pick<
    DeliveryRow,
    "status" | "attempts" | "responseStatus" | "nextAttemptAt" | "lastError" | "deliveredAt"
  >;
  /** The next attempt's job, not before this instant. */
  retryAt?: Date;
}

/**
 * The attempts of a batch, side by side, recorded together: one insert of the attempt records,
 * one update of the deliveries, one insert of the retry jobs (pipelined), and per 410 the
 * subscription disabled with its audit entry. Every message is signed before any is sent, so a
 * secret that does not decrypt fails the batch before a subscriber sees anything. `inGroups` (the
 * fan-out's first attempts): the POSTs go out `worker.concurrency` at a time
 * (`makeFirstAttempts`); otherwise all at once (a batch of `webhook-deliver` jobs is no larger).
 */
async function attemptDeliveries(
  deps: DeliverWebhookDeps,
  tx: Executor,
  items: readonly DueAttempt[],
  options: { inGroups: boolean } = { inGroups: false },
): Promise<DeliverOutcome[]> {
  // All signed first: a throw here leaves nothing sent.
  const secrets = batchSecrets(deps);
  const messages = items.map((due) => prepare(deps, due, secrets));
  let results: AttemptResult[] = [];
  if (!options.inGroups) {
    results = await Promise.all(
      items.map((due, i) => attempt(deps, due, messages[i] ?? "skipped")),
    );
  } else {
    const { connectTimeoutMs, responseTimeoutMs } = deps.settings.webhookDelivery;
    const sendBy = performance.now() + connectTimeoutMs + responseTimeoutMs;
    const perGroup = Math.max(1, deps.settings.concurrency);
    let from = 0;
    while (from < items.length) {
      const late = performance.now() > sendBy;
      const group: Promise<AttemptResult>[] = [];
      for (let sent = 0; from < items.length && sent < perGroup; from++) {
        const due = items[from] as DueAttempt;
        const message = messages[from] ?? "skipped";
        if (typeof message === "string") {
          group.push(attempt(deps, due, message)); // nothing to send
        } else if (late || deps.subscribers.isSlow(new URL(due.subscription.url))) {
          // Too late for this job, or to a subscriber an earlier group found slow: to a job.
          results.push(handOver(due));
        } else {
          group.push(attempt(deps, due, message));
          sent++;
        }
      }
      results.push(...(await Promise.all(group)));
    }
  }
  await recordAttempts(deps, tx, results);
  for (const { due, outcome, record } of results) {
    if (record === undefined) continue;
    deps.logger.info("webhook delivery attempt", {
      deliveryId: due.delivery.id,
      subscriptionId: due.subscription.id,
      eventId: due.delivery.eventId,
      attempt: due.attempt,
      status: record.response_status,
      durationMs: record.duration_ms,
      outcome,
    });
  }
  return results.map(({ outcome }) => outcome);
}

interface Message {
  body: string;
  headers: Record<string, string>;
  startedAt: Date;
}

/**
 * The signing secrets of a batch's subscriptions, each decrypted once for the batch (most of a
 * batch's deliveries share a few subscriptions). Held only while the batch is being signed: no
 * secret stays in memory between batches.
 */
function batchSecrets(
  deps: DeliverWebhookDeps,
): (subscription: SubscriptionRow, at: Date) => string[] {
  const decrypted = new Map<string, string>();
  const secret = (id: string, slot: "current" | "previous", ciphertext: string) => {
    const key = `${slot} ${id}`;
    let value = decrypted.get(key);
    if (value === undefined) {
      value = decryptSubscriptionSecret(deps.keyRing, id, slot, ciphertext);
      decrypted.set(key, value);
    }
    return value;
  };
  return (subscription, at) => {
    const secrets = [secret(subscription.id, "current", subscription.secretCiphertext)];
    // The previous secret signs too while the rotation's overlap lasts.
    if (
      subscription.previousSecretCiphertext !== null &&
      subscription.previousSecretExpiresAt !== null &&
      subscription.previousSecretExpiresAt.getTime() > at.getTime()
    ) {
      secrets.push(secret(subscription.id, "previous", subscription.previousSecretCiphertext));
    }
    return secrets;
  };
}

/**
 * The signed message of an attempt; `skipped` when the attempt is not due (made already, or the
 * delivery is settled or its event gone), `disabled` when its subscription is.
 */
function prepare(
  deps: DeliverWebhookDeps,
  due: DueAttempt,
  secretsOf: ReturnType<typeof batchSecrets>,
): Message | "skipped" | "disabled" {
  const { delivery, event, subscription } = due;
  if (delivery.status !== "pending" || delivery.attempts + 1 !== due.attempt) return "skipped";
  if (!subscription.enabled) return "disabled";
  if (event === null) return "skipped";
  const startedAt = deps.clock.now();
  // `{ type, timestamp, data }`, with the payload's JSON text as `data`.
  const body = `{"type":${JSON.stringify(event.eventType)},"timestamp":"${event.receivedAt.toISOString()}","data":${event.payload ?? "null"}}`;
  const secrets = secretsOf(subscription, startedAt);
  const timestamp = Math.floor(startedAt.getTime() / 1000);
  const signatures = secrets.map(
    (secret) => signStandardWebhook({ secret, id: event.id, timestamp, body })["webhook-signature"],
  );
  return {
    body,
    startedAt,
    headers: {
      "content-type": "application/json",
      "user-agent": USER_AGENT,
      "webhook-id": event.id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signatures.join(" "),
    },
  };
}

/** An attempt not made here, for a `webhook-deliver` job to make (when it is still due). */
function handOver(due: DueAttempt): AttemptResult {
  return { outcome: "queued", due, handedOver: true };
}

/** Sends a prepared message and decides what follows from the answer. */
async function attempt(
  deps: DeliverWebhookDeps,
  due: DueAttempt,
  message: Message | "skipped" | "disabled",
): Promise<AttemptResult> {
  const { delivery, subscription } = due;
  if (message === "skipped") return { outcome: "skipped", due };
  if (message === "disabled") {
    // No attempt: the delivery fails (a 410 of an earlier attempt, or the organization's choice).
    return {
      outcome: "failed",
      due,
      update: {
        ...unchanged(delivery),
        status: "failed",
        nextAttemptAt: null,
        lastError: `the subscription is disabled (${subscription.disabledReason ?? "disabled"})`,
      },
    };
  }
  const answer = await send(deps, subscription.url, message.body, message.headers);
  const finishedAt = deps.clock.now();
  const status = answer.status;
  const recorded = {
    record: {
      id: newId("webhookAttempt", message.startedAt),
      delivery_id: delivery.id,
      organization_id: delivery.organizationId,
      attempt: due.attempt,
      started_at: message.startedAt.toISOString(),
      duration_ms: answer.durationMs,
      response_status: status ?? null,
      response_body: answer.body ?? null,
      error: answer.error ?? null,
    },
  };
  const base = { ...unchanged(delivery), attempts: due.attempt, responseStatus: status ?? null };
  if (status !== undefined && status >= 200 && status <= 299) {
    return {
      ...recorded,
      outcome: "delivered",
      due,
      update: {
        ...base,
        status: "delivered",
        deliveredAt: finishedAt,
        nextAttemptAt: null,
        lastError: null,
      },
    };
  }
  if (status === 410) {
    return {
      ...recorded,
      outcome: "disabled",
      due,
      update: {
        ...base,
        status: "failed",
        nextAttemptAt: null,
        lastError: "the endpoint answered 410 Gone; the subscription is disabled",
      },
    };
  }
  const next = nextAttemptAt(due.attempt, finishedAt, deps.random);
  return {
    ...recorded,
    outcome: next === undefined ? "dead" : "retrying",
    due,
    update: {
      ...base,
      status: next === undefined ? "dead" : "pending",
      nextAttemptAt: next ?? null,
      lastError: answer.error ?? failureOf(status),
    },
    ...(next === undefined ? {} : { retryAt: next }),
  };
}

function unchanged(delivery: DeliveryRow): NonNullable<AttemptResult["update"]> {
  return {
    status: delivery.status,
    attempts: delivery.attempts,
    responseStatus: delivery.responseStatus,
    nextAttemptAt: delivery.nextAttemptAt,
    lastError: delivery.lastError,
    deliveredAt: delivery.deliveredAt,
  };
}

/**
 * Records a batch's attempts: independent statements, sent together (pipelined on the
 * transaction's connection). Then, for each 410, the subscription is disabled and audited.
 */
async function recordAttempts(
  deps: DeliverWebhookDeps,
  tx: Executor,
  results: readonly AttemptResult[],
): Promise<void> {
  const records = results.flatMap(({ record }) => (record === undefined ? [] : [record]));
  const updates = results.flatMap(({ due, update }) =>
    update === undefined
      ? []
      : [
          {
            id: due.delivery.id,
            status: update.status,
            attempts: update.attempts,
            response_status: update.responseStatus,
            next_attempt_at: update.nextAttemptAt?.toISOString() ?? null,
            last_error: update.lastError,
            delivered_at: update.deliveredAt?.toISOString() ?? null,
          },
        ],
  );
  const jobs = results.flatMap(({ due, retryAt, handedOver }) => {
    if (handedOver) return [{ payload: { deliveryId: due.delivery.id, attempt: due.attempt } }];
    if (retryAt === undefined) return [];
    return [
      {
        payload: { deliveryId: due.delivery.id, attempt: due.attempt + 1 },
        options: { startAfter: retryAt },
      },
    ];
  });
  await Promise.all([
    // Rows as one JSON parameter each (a value per parameter cost more CPU to build than the rest
    // of the statement: `pnpm bench:webhooks`).
    records.length === 0
      ? undefined
      : tx.execute(sql`
          insert into ${webhookDeliveryAttempts} (id, delivery_id, organization_id, attempt,
            started_at, duration_ms, response_status, response_body, error)
          select * from json_to_recordset(${JSON.stringify(records)}::json) as v(id text,
            delivery_id text, organization_id text, attempt int, started_at timestamptz,
            duration_ms int, response_status int, response_body text, error text)`),
    updates.length === 0
      ? undefined
      : tx.execute(sql`
          update ${webhookDeliveries} as d
          set status = v.status, attempts = v.attempts, response_status = v.response_status,
            next_attempt_at = v.next_attempt_at, last_error = v.last_error,
            delivered_at = v.delivered_at
          from json_to_recordset(${JSON.stringify(updates)}::json) as v(id text, status text,
            attempts int, response_status int, next_attempt_at timestamptz, last_error text,
            delivered_at timestamptz)
          where d.id = v.id`),
    deps.jobs.enqueueMany(tx, webhookDeliverQueue, jobs),
  ]);
  for (const { due, outcome } of results) {
    if (outcome !== "disabled") continue;
    const { subscription, delivery } = due;
    await tx
      .update(webhookSubscriptions)
      .set({ enabled: false, disabledReason: DISABLED_GONE, updatedAt: deps.clock.now() })
      .where(eq(webhookSubscriptions.id, subscription.id));
    await appendAudit(tx, deps.clock, {
      organizationId: subscription.organizationId,
      actor: "worker",
      action: "webhook_subscription.disabled",
      subjectType: "webhook_subscription",
      subjectId: subscription.id,
      details: { reason: DISABLED_GONE, deliveryId: delivery.id },
    });
  }
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

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createTestApp,
  createTestClock,
  type TestApp,
} from "@keyway/control-plane-api/testing/test-app";
import {
  auditLog,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookSubscriptions,
} from "@keyway/db";
import { generateStandardWebhookSecret, signStandardWebhook } from "@keyway/integrations-core";
import { JOB_SCHEMA, webhookDeliverQueue } from "@keyway/jobs";
import { and, asc, eq, sql } from "drizzle-orm";
import { WebhookVerificationError } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { WorkerDeps } from "../../deps";
import { createTestWorkerDeps, startTestWorker } from "../../testing/test-worker";
import {
  startTestSubscriber,
  type TestSubscriber,
  verifyWithReferenceLibrary,
} from "../../testing/webhook-subscriber";
import {
  fanOutWebhookEvents,
  processWebhookEvent,
  processWebhookEvents,
} from "../webhook-process/handler";
import { deliverWebhook, recordDeliveryFailure } from "./handler";
import { DELIVERY_JITTER, DELIVERY_SCHEDULE_MS } from "./retry-schedule";

/**
 * SPEC §8 delivery to subscribers, against a real PostgreSQL and a real HTTP subscriber on
 * loopback that verifies every signature with the reference Standard Webhooks library. Events come
 * in through the real front door; subscriptions are made through the API; the handler runs
 * directly (with the clocks and random source the test chooses) or inside the real worker.
 */

const INBOUND_SECRET = generateStandardWebhookSecret();
const TARGET_KEY = "acme-hooks";

let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let subscriber: TestSubscriber;
const workerDeps: WorkerDeps[] = [];

beforeAll(async () => {
  // Subscribers listen on loopback: private subscribers allowed (the refusal has its own test).
  t = await createTestApp({ settings: { allowPrivateWebhookSubscribers: true } });
  org = await t.createOrganization("Deliveries");
  const target = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
    targetKey: TARGET_KEY,
    variantId: "http-api",
    config: { baseUrl: "https://api.acme.example/v1", webhook: { scheme: "standard-webhooks" } },
    secrets: { webhookSecret: INBOUND_SECRET },
  });
  expect(target.status, target.text).toBe(201);
  const connection = await t.call("POST", "/v1/integration/connections", org.member, {
    targetKey: TARGET_KEY,
    methodId: "api-key",
    displayName: "Acme",
    secrets: { apiKey: "acme-key-0001" },
  });
  expect(connection.status, connection.text).toBe(201);
  subscriber = await startTestSubscriber();
});

afterEach(async () => {
  subscriber.release(503);
  subscriber.received.length = 0;
  subscriber.fallback({ status: 204 });
  for (const deps of workerDeps.splice(0)) await deps.jobs.stop(1000);
});

afterAll(async () => {
  await subscriber?.close();
  await t?.close();
});

function worker(options: Parameters<typeof createTestWorkerDeps>[1] = {}) {
  const deps = createTestWorkerDeps(t, options);
  workerDeps.push(deps);
  return deps;
}

/** A subscription through the API; returns its id and secret. */
async function subscribe(eventTypes: string[] = ["http-api.*"], url = `${subscriber.url}/hooks`) {
  const created = await t.call("POST", "/v1/webhook-subscriptions", org.member, {
    url,
    eventTypes,
  });
  expect(created.status, created.text).toBe(201);
  return { id: created.body.id as string, secret: created.body.secret as string };
}

async function disableOthers(keep: string) {
  await t.deps.database.db
    .update(webhookSubscriptions)
    .set({ enabled: false, disabledReason: "disabled_by_user" })
    .where(sql`${webhookSubscriptions.id} <> ${keep}`);
}

/** A signed delivery through the front door; returns the stored event's id. */
async function receive(type: string, data: Record<string, unknown> = {}) {
  const body = JSON.stringify({ type, data });
  const headers = signStandardWebhook({
    secret: INBOUND_SECRET,
    id: `msg_${randomUUID()}`,
    timestamp: Math.floor(t.clock.now().getTime() / 1000),
    body,
  });
  const response = await t.call("POST", `/p/integration/webhooks/${TARGET_KEY}`, undefined, body, {
    ...headers,
  });
  expect(response.status, response.text).toBe(202);
  return response.body.id as string;
}

async function deliveriesOf(eventId: string) {
  return t.deps.database.db
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.eventId, eventId));
}

/**
 * A received event fanned out, its deliveries waiting for their first attempt (as a fan-out whose
 * first attempts were handed to jobs leaves them); returns event and deliveries.
 */
async function receiveAndFanOut(type: string, data: Record<string, unknown> = {}) {
  const eventId = await receive(type, data);
  await fanOutWebhookEvents(worker(), [eventId]);
  return { eventId, deliveries: await deliveriesOf(eventId) };
}

async function deliveryRow(id: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, id));
  return row;
}

async function attemptsOf(id: string) {
  return t.deps.database.db
    .select()
    .from(webhookDeliveryAttempts)
    .where(eq(webhookDeliveryAttempts.deliveryId, id))
    .orderBy(asc(webhookDeliveryAttempts.attempt));
}

async function queuedAttempts(deliveryId: string) {
  const rows = await t.deps.database.db.execute<{ attempt: number; start_after: Date }>(
    sql`select (data->>'attempt')::int as attempt, start_after from ${sql.identifier(JOB_SCHEMA)}.job
        where name = ${webhookDeliverQueue.name} and data->>'deliveryId' = ${deliveryId}
        order by (data->>'attempt')::int`,
  );
  return rows.map((row) => ({ attempt: row.attempt, startAfter: new Date(row.start_after) }));
}

describe("a delivery", () => {
  it("is signed with Standard Webhooks, carries { type, timestamp, data }, and is recorded", async () => {
    const { id, secret } = await subscribe();
    await disableOthers(id);
    subscriber.answer({ status: 200, body: "é".repeat(1000) });
    const { eventId, deliveries } = await receiveAndFanOut("invoice.paid", { amount: 42 });
    expect(deliveries).toHaveLength(1);
    const delivery = deliveries[0]!;

    expect(await deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 1 })).toBe(
      "delivered",
    );
    expect(subscriber.received).toHaveLength(1);
    const received = subscriber.received[0]!;
    expect(received.headers["webhook-id"]).toBe(eventId);
    expect(received.headers["content-type"]).toBe("application/json");
    expect(received.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(verifyWithReferenceLibrary(received, secret)).toEqual({
      type: "http-api.invoice.paid",
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      data: { type: "invoice.paid", data: { amount: 42 } },
    });
    expect(() => verifyWithReferenceLibrary(received, generateStandardWebhookSecret())).toThrow(
      WebhookVerificationError,
    );

    expect(await deliveryRow(delivery.id)).toMatchObject({
      status: "delivered",
      attempts: 1,
      responseStatus: 200,
      nextAttemptAt: null,
    });
    const [attempt] = await attemptsOf(delivery.id);
    expect(attempt).toMatchObject({ attempt: 1, responseStatus: 200, error: null });
    expect(attempt!.durationMs).toBeGreaterThanOrEqual(0);
    // The first 1 KiB of the body: 512 two-byte characters.
    expect(attempt!.responseBody).toBe("é".repeat(512));

    // What the organization sees.
    const detail = await t.call("GET", `/v1/webhook-events/${eventId}`, org.viewer);
    expect(detail.status).toBe(200);
    expect(detail.body.deliveries).toEqual([
      expect.objectContaining({
        id: delivery.id,
        status: "delivered",
        attempts: 1,
        attemptHistory: [expect.objectContaining({ attempt: 1, responseStatus: 200 })],
      }),
    ]);
    expect(detail.text).not.toContain(secret);

    // The same job again (pg-boss retrying it) sends nothing.
    expect(await deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 1 })).toBe("skipped");
    expect(subscriber.received).toHaveLength(1);
  });

  it("follows the retry schedule, with jitter, then is dead after the eighth attempt", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    subscriber.fallback({ status: 500, body: "down" });
    const { deliveries } = await receiveAndFanOut("invoice.failed");
    const delivery = deliveries[0]!;
    // Moved by the test from now on (pg-boss purges jobs whose start lies long in the past).
    const clock = createTestClock(new Date());
    const deps = worker({ clock, random: () => 0.75 });

    for (let attempt = 1; attempt <= 8; attempt++) {
      const outcome = await deliverWebhook(deps, { deliveryId: delivery.id, attempt });
      const row = await deliveryRow(delivery.id);
      expect(row).toMatchObject({ attempts: attempt, responseStatus: 500 });
      if (attempt < 8) {
        expect(outcome).toBe("retrying");
        // random 0.75 → factor 1 + 0.1 × (2 × 0.75 − 1) = 1.05.
        const wait = Math.round(DELIVERY_SCHEDULE_MS[attempt]! * 1.05);
        const expected = new Date(clock.now().getTime() + wait);
        expect(row).toMatchObject({ status: "pending", nextAttemptAt: expected });
        expect(row!.lastError).toBe("the endpoint answered 500");
        expect(await queuedAttempts(delivery.id)).toContainEqual({
          attempt: attempt + 1,
          startAfter: expected,
        });
        clock.set(expected);
      } else {
        expect(outcome).toBe("dead");
        expect(row).toMatchObject({ status: "dead", nextAttemptAt: null });
      }
    }
    expect((await queuedAttempts(delivery.id)).map((job) => job.attempt)).toEqual([
      2, 3, 4, 5, 6, 7, 8,
    ]);
    expect((await attemptsOf(delivery.id)).map((a) => [a.attempt, a.responseStatus])).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => [n, 500]),
    );
    expect(subscriber.received).toHaveLength(8);

    // A dead delivery is replayed by hand: one fresh attempt, now.
    subscriber.fallback({ status: 202 });
    const replayed = await t.call(
      "POST",
      `/v1/webhook-deliveries/${delivery.id}/replay`,
      org.member,
    );
    expect(replayed.status, replayed.text).toBe(202);
    expect(replayed.body).toMatchObject({ status: "pending", attempts: 8 });
    expect((await queuedAttempts(delivery.id)).map((job) => job.attempt)).toContain(9);
    // A stale job (attempt 8 again) does nothing; the replay's attempt delivers.
    expect(await deliverWebhook(deps, { deliveryId: delivery.id, attempt: 8 })).toBe("skipped");
    expect(await deliverWebhook(deps, { deliveryId: delivery.id, attempt: 9 })).toBe("delivered");
    expect(await deliveryRow(delivery.id)).toMatchObject({ status: "delivered", attempts: 9 });
  });

  it("counts a redirect, a timeout and a refused connection as failures, and follows no redirect", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const { deliveries } = await receiveAndFanOut("invoice.moved");
    const delivery = deliveries[0]!;
    const deps = worker({
      settings: {
        webhookDelivery: {
          connectTimeoutMs: 1_000,
          responseTimeoutMs: 300,
          allowPrivateSubscribers: true,
        },
      },
    });

    subscriber.answer({ status: 302, headers: { location: `${subscriber.url}/elsewhere` } });
    expect(await deliverWebhook(deps, { deliveryId: delivery.id, attempt: 1 })).toBe("retrying");
    expect(subscriber.received).toHaveLength(1);
    expect((await deliveryRow(delivery.id))!.lastError).toBe(
      "the endpoint answered 302; redirects are not followed",
    );

    subscriber.answer("hold");
    expect(await deliverWebhook(deps, { deliveryId: delivery.id, attempt: 2 })).toBe("retrying");
    const [, timedOut] = await attemptsOf(delivery.id);
    expect(timedOut).toMatchObject({ attempt: 2, responseStatus: null });
    expect(timedOut!.error).toMatch(/timeout/i);

    await t.deps.database.db
      .update(webhookSubscriptions)
      .set({ url: "http://127.0.0.1:1/hooks" })
      .where(eq(webhookSubscriptions.id, id));
    expect(await deliverWebhook(deps, { deliveryId: delivery.id, attempt: 3 })).toBe("retrying");
    const third = (await attemptsOf(delivery.id))[2];
    expect(third).toMatchObject({ attempt: 3, responseStatus: null });
    expect(third!.error).toMatch(/ECONNREFUSED/);
  });

  it("disables the subscription when the endpoint answers 410, and stops its other deliveries", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const first = (await receiveAndFanOut("invoice.gone")).deliveries[0]!;
    const second = (await receiveAndFanOut("invoice.gone")).deliveries[0]!;
    subscriber.answer({ status: 410 });
    expect(await deliverWebhook(worker(), { deliveryId: first.id, attempt: 1 })).toBe("disabled");
    const [subscription] = await t.deps.database.db
      .select()
      .from(webhookSubscriptions)
      .where(eq(webhookSubscriptions.id, id));
    expect(subscription).toMatchObject({ enabled: false, disabledReason: "gone" });
    expect(await deliveryRow(first.id)).toMatchObject({ status: "failed", responseStatus: 410 });
    expect(await queuedAttempts(first.id)).toHaveLength(0);
    const [audit] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, "webhook_subscription.disabled"), eq(auditLog.subjectId, id)));
    expect(audit).toMatchObject({ actor: "worker", details: { reason: "gone" } });

    expect(await deliverWebhook(worker(), { deliveryId: second.id, attempt: 1 })).toBe("failed");
    expect(subscriber.received).toHaveLength(1);
    const shown = await t.call("GET", `/v1/webhook-subscriptions/${id}`, org.viewer);
    expect(shown.body).toMatchObject({ enabled: false, disabledReason: "gone" });

    // Replay waits for the subscription to be enabled again.
    const refused = await t.call("POST", `/v1/webhook-deliveries/${second.id}/replay`, org.member);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("subscription_disabled");
    const enabled = await t.call("PATCH", `/v1/webhook-subscriptions/${id}`, org.member, {
      enabled: true,
    });
    expect(enabled.body).toMatchObject({ enabled: true, disabledReason: null });
    const replayed = await t.call("POST", `/v1/webhook-deliveries/${second.id}/replay`, org.member);
    expect(replayed.status, replayed.text).toBe(202);
    expect(await deliverWebhook(worker(), { deliveryId: second.id, attempt: 1 })).toBe("delivered");
  });

  it("is signed with both secrets during a rotation overlap, and with the new one only after", async () => {
    const { id, secret: oldSecret } = await subscribe();
    await disableOthers(id);
    const rotated = await t.call(
      "POST",
      `/v1/webhook-subscriptions/${id}/rotate-secret`,
      org.member,
    );
    expect(rotated.status, rotated.text).toBe(200);
    const newSecret: string = rotated.body.secret;
    expect(newSecret).not.toBe(oldSecret);

    const during = (await receiveAndFanOut("invoice.rotated")).deliveries[0]!;
    const deps = worker();
    expect(await deliverWebhook(deps, { deliveryId: during.id, attempt: 1 })).toBe("delivered");
    const twoSigned = subscriber.received.at(-1)!;
    expect(String(twoSigned.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    expect(verifyWithReferenceLibrary(twoSigned, oldSecret)).toMatchObject({
      type: "http-api.invoice.rotated",
    });
    expect(verifyWithReferenceLibrary(twoSigned, newSecret)).toMatchObject({
      type: "http-api.invoice.rotated",
    });

    // The overlap ends.
    await t.deps.database.db
      .update(webhookSubscriptions)
      .set({ previousSecretExpiresAt: new Date(t.clock.now().getTime() - 1000) })
      .where(eq(webhookSubscriptions.id, id));
    const after = (await receiveAndFanOut("invoice.rotated")).deliveries[0]!;
    expect(await deliverWebhook(deps, { deliveryId: after.id, attempt: 1 })).toBe("delivered");
    const oneSigned = subscriber.received.at(-1)!;
    expect(String(oneSigned.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    expect(verifyWithReferenceLibrary(oneSigned, newSecret)).toBeDefined();
    expect(() => verifyWithReferenceLibrary(oneSigned, oldSecret)).toThrow(
      WebhookVerificationError,
    );
    // The worker logs each attempt, never a secret.
    expect(deps.logger.lines.length).toBeGreaterThanOrEqual(2);
    for (const line of deps.logger.lines) {
      expect(line).not.toContain(oldSecret);
      expect(line).not.toContain(newSecret);
    }
  });

  it("is not sent to a private address unless the operator allows private subscribers", async () => {
    // `localhost` resolves to loopback: the check is on the resolved address, at send time too.
    const { id } = await subscribe(
      ["http-api.*"],
      subscriber.url.replace("127.0.0.1", "localhost"),
    );
    await disableOthers(id);
    const delivery = (await receiveAndFanOut("invoice.private")).deliveries[0]!;
    const strict = worker({
      settings: {
        webhookDelivery: {
          connectTimeoutMs: 1_000,
          responseTimeoutMs: 1_000,
          allowPrivateSubscribers: false,
        },
      },
    });
    expect(await deliverWebhook(strict, { deliveryId: delivery.id, attempt: 1 })).toBe("retrying");
    expect(subscriber.received).toHaveLength(0);
    const [attempt] = await attemptsOf(delivery.id);
    expect(attempt!.error).toMatch(/^not sent: the host localhost resolves to a loopback address/);
    expect(await deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 2 })).toBe(
      "delivered",
    );
  });

  it("makes an attempt once when two jobs for it run at the same time", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const delivery = (await receiveAndFanOut("invoice.twice")).deliveries[0]!;
    subscriber.answer("hold");
    const first = deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 1 });
    await subscriber.waitForRequests(1);
    // pg-boss hands the job to a second worker while the first is still sending.
    const second = deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 1 });
    subscriber.release(200);
    expect(await first).toBe("delivered");
    expect(await second).toBe("skipped");
    expect(subscriber.received).toHaveLength(1);
    expect(await attemptsOf(delivery.id)).toHaveLength(1);

    // A replay while an attempt runs is refused rather than left waiting.
    subscriber.answer("hold");
    const replayed = await t.call(
      "POST",
      `/v1/webhook-deliveries/${delivery.id}/replay`,
      org.member,
    );
    expect(replayed.status, replayed.text).toBe(202);
    const running = deliverWebhook(worker(), { deliveryId: delivery.id, attempt: 2 });
    await subscriber.waitForRequests(2);
    const busy = await t.call("POST", `/v1/webhook-deliveries/${delivery.id}/replay`, org.member);
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe("delivery_in_progress");
    subscriber.release(200);
    expect(await running).toBe("delivered");
  });
});

describe("a first attempt, made by the fan-out job itself", () => {
  it("delivers without a job of its own", async () => {
    const { id, secret } = await subscribe();
    await disableOthers(id);
    const eventId = await receive("invoice.inline", { amount: 7 });
    expect(await processWebhookEvent(worker(), eventId)).toBe("processed");

    expect(subscriber.received).toHaveLength(1);
    expect(verifyWithReferenceLibrary(subscriber.received[0]!, secret)).toEqual({
      type: "http-api.invoice.inline",
      timestamp: expect.any(String),
      data: { type: "invoice.inline", data: { amount: 7 } },
    });
    const [delivery] = await deliveriesOf(eventId);
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1, responseStatus: 204 });
    expect(await attemptsOf(delivery!.id)).toEqual([
      expect.objectContaining({ attempt: 1, responseStatus: 204, error: null }),
    ]);
    expect(await queuedAttempts(delivery!.id)).toEqual([]);
  });

  it("queues the second attempt on the schedule when the first fails", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    subscriber.answer({ status: 503, body: "busy" });
    const eventId = await receive("invoice.busy");
    const clock = createTestClock(new Date());
    expect(await processWebhookEvent(worker({ clock, random: () => 0 }), eventId)).toBe(
      "processed",
    );

    const [delivery] = await deliveriesOf(eventId);
    // random 0 → the shortest wait the jitter allows: 5 s × 0.9.
    const retryAt = new Date(
      clock.now().getTime() + Math.round(DELIVERY_SCHEDULE_MS[1]! * (1 - DELIVERY_JITTER)),
    );
    expect(delivery).toMatchObject({
      status: "pending",
      attempts: 1,
      responseStatus: 503,
      nextAttemptAt: retryAt,
      lastError: "the endpoint answered 503",
    });
    expect(await attemptsOf(delivery!.id)).toEqual([
      expect.objectContaining({ attempt: 1, responseStatus: 503, responseBody: "busy" }),
    ]);
    expect(await queuedAttempts(delivery!.id)).toEqual([{ attempt: 2, startAfter: retryAt }]);
    expect(await deliverWebhook(worker(), { deliveryId: delivery!.id, attempt: 2 })).toBe(
      "delivered",
    );
  });

  it("is made when the fan-out job runs again after a crash between fan-out and attempt", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const eventId = await receive("invoice.crashed");
    // The fan-out committed, then the worker died before its attempts were recorded: the job
    // was never completed, and pg-boss hands it out again once it expires.
    await fanOutWebhookEvents(worker(), [eventId]);
    const [pending] = await deliveriesOf(eventId);
    expect(pending).toMatchObject({ status: "pending", attempts: 0 });
    expect(await queuedAttempts(pending!.id)).toEqual([]);

    expect(await processWebhookEvent(worker(), eventId)).toBe("skipped");
    expect(subscriber.received).toHaveLength(1);
    expect(await deliveryRow(pending!.id)).toMatchObject({ status: "delivered", attempts: 1 });
    // A third run finds nothing left to do.
    expect(await processWebhookEvent(worker(), eventId)).toBe("skipped");
    expect(subscriber.received).toHaveLength(1);
  });

  it("is made once when two workers run the fan-out job at the same time", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const eventId = await receive("invoice.raced");
    subscriber.answer("hold");
    const first = processWebhookEvent(worker(), eventId);
    await subscriber.waitForRequests(1);
    // pg-boss hands the job to a second worker while the first is still sending.
    const second = processWebhookEvent(worker(), eventId);
    subscriber.release(200);
    expect(await first).toBe("processed");
    expect(await second).toBe("skipped");
    expect(subscriber.received).toHaveLength(1);
    const [delivery] = await deliveriesOf(eventId);
    expect(await attemptsOf(delivery!.id)).toHaveLength(1);
  });

  it("is handed to a job when its subscriber answered slowly lately, not made inline", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const deps = worker({
      settings: {
        webhookDelivery: {
          connectTimeoutMs: 1_000,
          responseTimeoutMs: 300,
          allowPrivateSubscribers: true,
        },
      },
    });
    subscriber.answer("hold");
    const first = await receive("invoice.slow");
    expect(await processWebhookEvent(deps, first)).toBe("processed");
    expect(subscriber.received).toHaveLength(1);
    const [timedOut] = await deliveriesOf(first);
    expect(timedOut).toMatchObject({ status: "pending", attempts: 1 });

    // The next event's first attempt to that subscriber goes to the delivery workers.
    const second = await receive("invoice.slow");
    expect(await processWebhookEvent(deps, second)).toBe("processed");
    expect(subscriber.received).toHaveLength(1);
    const [queued] = await deliveriesOf(second);
    expect(queued).toMatchObject({ status: "pending", attempts: 0 });
    expect(await queuedAttempts(queued!.id)).toEqual([
      { attempt: 1, startAfter: expect.any(Date) },
    ]);
    subscriber.release(503);
    expect(await deliverWebhook(deps, { deliveryId: queued!.id, attempt: 1 })).toBe("delivered");
  });

  it("goes out worker.concurrency at a time however many events the batch holds", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const events: string[] = [];
    for (let i = 0; i < 5; i++) events.push(await receive("invoice.grouped", { i }));
    subscriber.fallback("hold");
    // concurrency 2 (the test worker's): groups of 2, 2 and 1, each sent once the one before
    // was answered.
    const run = processWebhookEvents(worker(), events);
    for (const arrived of [2, 4, 5]) {
      await subscriber.waitForRequests(arrived);
      await sleep(300); // time for any request beyond the group to arrive: none may
      expect(subscriber.received).toHaveLength(arrived);
      subscriber.release(204);
    }
    await run;
    for (const eventId of events) {
      const [delivery] = await deliveriesOf(eventId);
      expect(delivery).toMatchObject({ status: "delivered", attempts: 1 });
    }
  });

  it("is handed to a job when an earlier group of the batch found its subscriber slow", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    const deps = worker({
      settings: {
        concurrency: 1,
        webhookDelivery: {
          connectTimeoutMs: 1_000,
          responseTimeoutMs: 300,
          allowPrivateSubscribers: true,
        },
      },
    });
    const events: string[] = [];
    for (let i = 0; i < 3; i++) events.push(await receive("invoice.slow-group", { i }));
    subscriber.fallback("hold");
    await processWebhookEvents(deps, events);
    // The first group's attempt timed out; the other two went to jobs without being sent.
    expect(subscriber.received).toHaveLength(1);
    const deliveries = (await Promise.all(events.map(deliveriesOf))).flat();
    expect(deliveries.map(({ attempts }) => attempts).sort()).toEqual([0, 0, 1]);
    for (const delivery of deliveries.filter(({ attempts }) => attempts === 0)) {
      expect(await queuedAttempts(delivery.id)).toEqual([
        { attempt: 1, startAfter: expect.any(Date) },
      ]);
    }
  });

  it("is handed to a job when the batch's earlier groups took longer than one attempt may", async () => {
    const { id } = await subscribe();
    await disableOthers(id);
    // A group may start up to connect + response timeouts (1.1 s) after the first: answers of
    // 700 ms (neither a timeout nor slow) leave the third group too late whatever the machine.
    const deps = worker({
      settings: {
        concurrency: 1,
        webhookDelivery: {
          connectTimeoutMs: 100,
          responseTimeoutMs: 1_000,
          allowPrivateSubscribers: true,
        },
      },
    });
    const events: string[] = [];
    for (let i = 0; i < 3; i++) events.push(await receive("invoice.late-group", { i }));
    subscriber.fallback("hold");
    let finished = false;
    const answering = (async () => {
      // Each request answered 700 ms after it arrived.
      for (let answered = 0; !finished; ) {
        if (subscriber.received.length > answered) {
          await sleep(700);
          subscriber.release(204);
          answered++;
        } else {
          await sleep(20);
        }
      }
    })();
    await processWebhookEvents(deps, events);
    finished = true;
    await answering;
    // The first group delivered, the last handed over (the second either, on a slow machine).
    const deliveries = (await Promise.all(events.map(deliveriesOf))).flat();
    const delivered = deliveries.filter(({ status }) => status === "delivered");
    const handedOver = deliveries.filter(({ attempts }) => attempts === 0);
    expect(delivered.length).toBeGreaterThanOrEqual(1);
    expect(handedOver.length).toBeGreaterThanOrEqual(1);
    expect(delivered.length + handedOver.length).toBe(3);
    for (const delivery of handedOver) {
      expect(delivery.status).toBe("pending");
      expect(await queuedAttempts(delivery.id)).toEqual([
        { attempt: 1, startAfter: expect.any(Date) },
      ]);
    }
  });

  it("is handed to a job per delivery when it cannot be made, before anything is sent", async () => {
    const broken = await subscribe();
    const working = await subscribe();
    await disableOthers(broken.id);
    await t.deps.database.db
      .update(webhookSubscriptions)
      .set({ enabled: true, disabledReason: null })
      .where(eq(webhookSubscriptions.id, working.id));
    // A ciphertext moved from another row does not decrypt (associated data binds it to its row).
    const [donor] = await t.deps.database.db
      .select({ ciphertext: webhookSubscriptions.secretCiphertext })
      .from(webhookSubscriptions)
      .where(eq(webhookSubscriptions.id, working.id));
    await t.deps.database.db
      .update(webhookSubscriptions)
      .set({ secretCiphertext: donor!.ciphertext })
      .where(eq(webhookSubscriptions.id, broken.id));

    const eventId = await receive("invoice.split");
    const deps = worker();
    expect(await processWebhookEvent(deps, eventId)).toBe("processed");
    expect(subscriber.received).toHaveLength(0);
    const deliveries = await deliveriesOf(eventId);
    expect(deliveries).toHaveLength(2);
    for (const delivery of deliveries) {
      expect(delivery).toMatchObject({ status: "pending", attempts: 0 });
      expect(await queuedAttempts(delivery.id)).toEqual([
        { attempt: 1, startAfter: expect.any(Date) },
      ]);
    }
    expect(deps.logger.lines.join("\n")).toContain("first delivery attempts failed");
    // Each job on its own: the working subscription's delivery is not held back by the other.
    const good = deliveries.find((d) => d.subscriptionId === working.id)!;
    expect(await deliverWebhook(deps, { deliveryId: good.id, attempt: 1 })).toBe("delivered");
    expect(subscriber.received).toHaveLength(1);
    for (const line of deps.logger.lines) expect(line).not.toContain(working.secret);
  });
});

describe("a delivery that cannot be attempted", () => {
  it("is failed once pg-boss gives up on its job, with the cause and nothing secret", async () => {
    const other = await subscribe();
    const { id } = await subscribe();
    await disableOthers(id);
    const delivery = (await receiveAndFanOut("invoice.broken")).deliveries[0]!;
    // A ciphertext moved from another row does not decrypt (associated data binds it to its row).
    const [donor] = await t.deps.database.db
      .select({ ciphertext: webhookSubscriptions.secretCiphertext })
      .from(webhookSubscriptions)
      .where(eq(webhookSubscriptions.id, other.id));
    await t.deps.database.db
      .update(webhookSubscriptions)
      .set({ secretCiphertext: donor!.ciphertext })
      .where(eq(webhookSubscriptions.id, id));
    const deps = worker();
    const job = { deliveryId: delivery.id, attempt: 1 };
    const error = await deliverWebhook(deps, job).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(Error);
    expect(subscriber.received).toHaveLength(0);

    await recordDeliveryFailure(deps, job, error, false);
    expect(await deliveryRow(delivery.id)).toMatchObject({ status: "pending", attempts: 0 });
    await recordDeliveryFailure(deps, job, error, true);
    const failed = await deliveryRow(delivery.id);
    expect(failed).toMatchObject({ status: "failed", attempts: 0, nextAttemptAt: null });
    expect(failed!.lastError).toMatch(/decrypt/i);
    // A late report for an attempt already made changes nothing.
    await recordDeliveryFailure(deps, { ...job, attempt: 5 }, new Error("late"), true);
    expect((await deliveryRow(delivery.id))!.lastError).toBe(failed!.lastError);
  });
});

describe("the worker", () => {
  it("delivers what the front door received, through pg-boss", async () => {
    const { id, secret } = await subscribe(["http-api.order.*"]);
    await disableOthers(id);
    const running = await startTestWorker(createTestWorkerDeps(t));
    try {
      const body = JSON.stringify({ type: "order.shipped", data: { order: 7 } });
      const response = await t.call(
        "POST",
        `/p/integration/webhooks/${TARGET_KEY}`,
        undefined,
        body,
        {
          ...signStandardWebhook({
            secret: INBOUND_SECRET,
            id: `msg_${randomUUID()}`,
            timestamp: Math.floor(Date.now() / 1000),
            body,
          }),
        },
      );
      expect(response.status).toBe(202);
      await subscriber.waitForRequests(1);
      expect(verifyWithReferenceLibrary(subscriber.received[0]!, secret)).toMatchObject({
        type: "http-api.order.shipped",
        data: { data: { order: 7 } },
      });
    } finally {
      await running.stop();
    }
  });
});

import { createHmac, randomUUID } from "node:crypto";
import {
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedTarget,
} from "@keyway/control-plane-api/internal/fixtures";
import {
  createTestApp,
  createTestClock,
  type TestApp,
} from "@keyway/control-plane-api/testing/test-app";
import {
  newId,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhookEventPayload,
  webhookEvents,
  webhookRedeliveries,
  webhookSubscriptions,
} from "@keyway/db";
import { eq, inArray } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { createTestWorkerDeps } from "../../testing/test-worker";
import { runWebhookRetention, type WebhookRetentionSettings } from "./handler";

const SECRET = "gh-secret-retention";
const DAY = 24 * 3_600_000;
const NOW = new Date("2025-09-01T12:00:00Z");

const SETTINGS: WebhookRetentionSettings = {
  rawBodyRetentionDays: 7,
  dedupeRetentionHours: 72,
  eventRetentionDays: 30,
  attemptRetentionDays: 14,
  batchSize: 1000,
};

interface Scenario {
  t: TestApp;
  clock: ReturnType<typeof createTestClock>;
  github: SeededTarget;
  subscriptionId: string;
  organizationId: string;
}

let open: TestApp[] = [];
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  open = [];
});

async function scenario(): Promise<Scenario> {
  const clock = createTestClock(NOW);
  const t = await createTestApp({ clock });
  open.push(t);
  const db = t.deps.database.db;
  const organizationId = await seedOrganization(db, t.clock, "Retention org");
  const github = await seedTarget(db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: SECRET },
  });
  await seedConnection(db, t.deps, {
    organizationId,
    target: github,
    methodId: "github-app",
    externalSubjectId: "700",
  });
  const subscriptionId = newId("webhookSubscription", t.clock.now());
  await db.insert(webhookSubscriptions).values({
    id: subscriptionId,
    organizationId,
    url: "https://subscriber.example.com/hooks",
    eventTypes: ["*"],
    secretCiphertext: "not-used-by-retention",
    createdBy: "test",
  });
  return { t, clock, github, subscriptionId, organizationId };
}

/** A signed GitHub delivery through the real front door, received `daysAgo` before NOW. */
async function receive(
  s: Scenario,
  daysAgo: number,
  guid: string = randomUUID(),
): Promise<{ id: string; duplicate: boolean; guid: string }> {
  s.clock.set(new Date(NOW.getTime() - daysAgo * DAY));
  const body = JSON.stringify({ action: "opened", installation: { id: 700 } });
  const response = await s.t.app.request(`/p/integration/webhooks/${s.github.targetKey}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "issues",
      "x-github-delivery": guid,
      "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`,
    },
    body,
  });
  s.clock.set(NOW);
  expect(response.status).toBe(202);
  return { ...((await response.json()) as { id: string; duplicate: boolean }), guid };
}

/** A delivery of the event to the scenario's subscription, with one attempt per `attemptAges`. */
async function deliver(
  s: Scenario,
  eventId: string,
  status: "pending" | "delivered" | "dead",
  attemptDaysAgo: number[],
): Promise<string> {
  const db = s.t.deps.database.db;
  const deliveryId = newId("webhookDelivery", NOW);
  await db.insert(webhookDeliveries).values({
    id: deliveryId,
    subscriptionId: s.subscriptionId,
    eventId,
    organizationId: s.organizationId,
    status,
    attempts: attemptDaysAgo.length,
  });
  for (const [index, daysAgo] of attemptDaysAgo.entries()) {
    await db.insert(webhookDeliveryAttempts).values({
      id: newId("webhookAttempt", NOW),
      deliveryId,
      organizationId: s.organizationId,
      attempt: index + 1,
      startedAt: new Date(NOW.getTime() - daysAgo * DAY),
      durationMs: 12,
      responseStatus: status === "delivered" ? 204 : 503,
    });
  }
  return deliveryId;
}

async function events(s: Scenario, ids: string[]) {
  const rows = await s.t.deps.database.db
    .select({ id: webhookEvents.id, rawBody: webhookEvents.rawBody })
    .from(webhookEvents)
    .where(inArray(webhookEvents.id, ids));
  return new Map(rows.map((row) => [row.id, row.rawBody === null ? "no body" : "body"]));
}

async function attemptsOf(s: Scenario, deliveryId: string) {
  const rows = await s.t.deps.database.db
    .select({ attempt: webhookDeliveryAttempts.attempt })
    .from(webhookDeliveryAttempts)
    .where(eq(webhookDeliveryAttempts.deliveryId, deliveryId));
  return rows.map((row) => row.attempt).sort();
}

function retentionDeps(s: Scenario, retention: Partial<WebhookRetentionSettings> = {}) {
  const deps = createTestWorkerDeps(s.t);
  return { ...deps, settings: { ...deps.settings, retention: { ...SETTINGS, ...retention } } };
}

describe("runWebhookRetention", () => {
  it("removes raw bodies, then events, then attempt records, each at its own age", async () => {
    const s = await scenario();
    const fresh = await receive(s, 1);
    const week = await receive(s, 8);
    const month = await receive(s, 20);
    const expired = await receive(s, 31);
    const expiredPending = await receive(s, 40);
    const expiredDelivery = await deliver(s, expired.id, "dead", [31, 30]);
    const pendingDelivery = await deliver(s, expiredPending.id, "pending", [40]);
    const monthDelivery = await deliver(s, month.id, "delivered", [20, 13]);
    const freshDelivery = await deliver(s, fresh.id, "delivered", [1]);

    const deps = retentionDeps(s);
    const outcome = await runWebhookRetention(deps);

    const ids = [fresh, week, month, expired, expiredPending].map((e) => e.id);
    expect(await events(s, ids)).toEqual(
      new Map([
        [fresh.id, "body"],
        [week.id, "no body"],
        [month.id, "no body"],
        // A delivery still pending (a replay) keeps its event.
        [expiredPending.id, "no body"],
      ]),
    );
    // An event that lost its body keeps its payload (stored as the body until then).
    const payloads = await s.t.deps.database.db
      .select({ payload: webhookEventPayload, inBody: webhookEvents.payloadInBody })
      .from(webhookEvents)
      .where(inArray(webhookEvents.id, [fresh.id, week.id]))
      .orderBy(webhookEvents.receivedAt);
    expect(payloads).toEqual([
      { payload: { action: "opened", installation: { id: 700 } }, inBody: false },
      { payload: { action: "opened", installation: { id: 700 } }, inBody: true },
    ]);
    // The expired event's delivery and attempts went with it.
    const deliveries = await s.t.deps.database.db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(inArray(webhookDeliveries.id, [expiredDelivery, pendingDelivery, monthDelivery]));
    expect(deliveries.map((d) => d.id).sort()).toEqual([pendingDelivery, monthDelivery].sort());
    expect(await attemptsOf(s, expiredDelivery)).toEqual([]);
    // Attempt records older than 14 days are gone; the delivery row stays.
    expect(await attemptsOf(s, monthDelivery)).toEqual([2]);
    expect(await attemptsOf(s, pendingDelivery)).toEqual([]);
    expect(await attemptsOf(s, freshDelivery)).toEqual([1]);
    expect(outcome).toEqual({
      rawBodiesRemoved: 4,
      attemptsDeleted: 4,
      eventsDeleted: 1,
      redeliveryRecordsDeleted: 0,
    });

    // Idempotent: a second run finds nothing left to remove.
    expect(await runWebhookRetention(deps)).toEqual({
      rawBodiesRemoved: 0,
      attemptsDeleted: 0,
      eventsDeleted: 0,
      redeliveryRecordsDeleted: 0,
    });
    await deps.jobs.stop();
  });

  it("keeps dedupe keys at least dedupe_retention_hours, whatever the event retention", async () => {
    const s = await scenario();
    const twoDays = await receive(s, 2);
    const fourDays = await receive(s, 4);
    // Below the floor on purpose (the config refuses it): the 72 h floor still holds.
    const deps = retentionDeps(s, { eventRetentionDays: 1, rawBodyRetentionDays: 1 });
    expect(await runWebhookRetention(deps)).toMatchObject({ eventsDeleted: 1 });
    expect([...(await events(s, [twoDays.id, fourDays.id])).keys()]).toEqual([twoDays.id]);

    // GitHub redelivering the kept one is still recognised as a duplicate; the deleted one is
    // new again.
    expect(await receive(s, 0, twoDays.guid)).toMatchObject({ id: twoDays.id, duplicate: true });
    expect(await receive(s, 0, fourDays.guid)).toMatchObject({ duplicate: false });
    await deps.jobs.stop();
  });

  it("works through any backlog in bounded batches", async () => {
    const s = await scenario();
    const old = [];
    for (let i = 0; i < 7; i++) old.push(await receive(s, 8 + i));
    const db = s.t.deps.database.db;
    await db.insert(webhookRedeliveries).values([
      {
        targetId: s.github.id,
        externalDeliveryId: randomUUID(),
        providerDeliveryId: "1",
        requestedAt: new Date(NOW.getTime() - 31 * DAY),
        responseStatus: 202,
      },
      {
        targetId: s.github.id,
        externalDeliveryId: randomUUID(),
        providerDeliveryId: "2",
        requestedAt: new Date(NOW.getTime() - DAY),
        responseStatus: 202,
      },
    ]);
    const deps = retentionDeps(s, { batchSize: 2 });
    expect(await runWebhookRetention(deps)).toMatchObject({
      rawBodiesRemoved: 7,
      redeliveryRecordsDeleted: 1,
    });
    const bodies = await events(
      s,
      old.map((e) => e.id),
    );
    expect([...bodies.values()]).toEqual(Array(7).fill("no body"));
    const records = await db.select().from(webhookRedeliveries);
    expect(records.map((r) => r.providerDeliveryId)).toEqual(["2"]);
    await deps.jobs.stop();
  });
});

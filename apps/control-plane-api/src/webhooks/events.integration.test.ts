import { randomUUID } from "node:crypto";
import { webhookDeliveries, webhookEvents } from "@keyway/db";
import { generateStandardWebhookSecret, signStandardWebhook } from "@keyway/integrations-core";
import { JOB_SCHEMA, webhookDeliverQueue } from "@keyway/jobs";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";

/**
 * `/v1/webhook-events`, `/v1/webhook-deliveries` and `/v1/operator/webhook-events` (SPEC §8):
 * what organizations and operators see of received events, and manual replay. Events come in
 * through the real front door (`http-api` targets with Standard Webhooks signatures); nothing
 * here runs the worker, so deliveries stay as the API leaves them.
 */
let t: TestApp;
const clock = createTestClock();
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;
const SECRET = generateStandardWebhookSecret();
const SHARED_SECRET = generateStandardWebhookSecret();
/** A public address literal: subscriptions need no DNS and are never private. */
const PUBLIC_URL = "https://93.184.215.14/hooks";

async function createTarget(targetKey: string, secret: string) {
  const answer = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
    targetKey,
    variantId: "http-api",
    config: { baseUrl: "https://api.example.com/v1", webhook: { scheme: "standard-webhooks" } },
    secrets: { webhookSecret: secret },
  });
  expect(answer.status, answer.text).toBe(201);
}

async function connect(token: string, targetKey: string) {
  const answer = await t.call("POST", "/v1/integration/connections", token, {
    targetKey,
    methodId: "api-key",
    displayName: targetKey,
    secrets: { apiKey: "key-0001-abcdef" },
  });
  expect(answer.status, answer.text).toBe(201);
}

async function receive(targetKey: string, secret: string, type: string): Promise<string> {
  const body = JSON.stringify({ type, data: { n: 1 } });
  const headers = signStandardWebhook({
    secret,
    id: `msg_${randomUUID()}`,
    timestamp: Math.floor(t.clock.now().getTime() / 1000),
    body,
  });
  const answer = await t.call("POST", `/p/integration/webhooks/${targetKey}`, undefined, body, {
    ...headers,
  });
  expect(answer.status, answer.text).toBe(202);
  return answer.body.id;
}

async function deliverJobs(deliveryId: string) {
  const rows = await t.deps.database.db.execute<{ attempt: number }>(
    sql`select (data->>'attempt')::int as attempt from ${sql.identifier(JOB_SCHEMA)}.job
        where name = ${webhookDeliverQueue.name} and data->>'deliveryId' = ${deliveryId}
        order by 1`,
  );
  return rows.map((row) => row.attempt);
}

const ids = { paid: "", failed: "", created: "", unassigned: "" };

beforeAll(async () => {
  t = await createTestApp({ clock });
  org = await t.createOrganization("Events");
  other = await t.createOrganization("Elsewhere");
  await createTarget("billing", SECRET);
  await connect(org.member, "billing");
  // Two organizations on one target: an event naming no connection is unassigned.
  await createTarget("shared", SHARED_SECRET);
  await connect(org.member, "shared");
  await connect(other.member, "shared");

  ids.paid = await receive("billing", SECRET, "invoice.paid");
  clock.advance(1000);
  ids.failed = await receive("billing", SECRET, "invoice.failed");
  clock.advance(1000);
  ids.created = await receive("billing", SECRET, "customer.created");
  ids.unassigned = await receive("shared", SHARED_SECRET, "thing.happened");
});

afterAll(async () => {
  await t.close();
});

describe("listing and reading events", () => {
  it("lists the organization's events newest first, with filters and a cursor", async () => {
    const all = await t.call("GET", "/v1/webhook-events", org.viewer);
    expect(all.status, all.text).toBe(200);
    expect(all.body.items.map((e: { id: string }) => e.id)).toEqual([
      ids.created,
      ids.failed,
      ids.paid,
    ]);
    expect(all.body.items[0]).toMatchObject({
      targetKey: "billing",
      eventType: "http-api.customer.created",
      status: "received",
    });
    expect(all.body.items[0]).not.toHaveProperty("payload");
    expect(all.body.nextCursor).toBeNull();

    const query = async (search: string) =>
      (await t.call("GET", `/v1/webhook-events?${search}`, org.viewer)).body.items.map(
        (e: { id: string }) => e.id,
      );
    expect(await query("type=http-api.invoice.*")).toEqual([ids.failed, ids.paid]);
    expect(await query("type=http-api.invoice.paid")).toEqual([ids.paid]);
    expect(await query("type=*&targetKey=billing")).toHaveLength(3);
    expect(await query("targetKey=shared")).toEqual([]);
    expect(await query("status=processed")).toEqual([]);
    const paidAt = (await t.call("GET", `/v1/webhook-events/${ids.paid}`, org.viewer)).body
      .receivedAt;
    expect(await query(`receivedAfter=${encodeURIComponent(paidAt)}`)).toHaveLength(3);
    expect(await query(`receivedBefore=${encodeURIComponent(paidAt)}`)).toEqual([]);

    const first = await t.call("GET", "/v1/webhook-events?limit=2", org.viewer);
    expect(first.body.items).toHaveLength(2);
    const next = await t.call(
      "GET",
      `/v1/webhook-events?limit=2&before=${first.body.nextCursor}`,
      org.viewer,
    );
    expect(next.body.items.map((e: { id: string }) => e.id)).toEqual([ids.paid]);
    expect(next.body.nextCursor).toBeNull();

    for (const search of ["type=Invoice", "status=lost", "receivedAfter=yesterday", "limit=0"]) {
      expect((await t.call("GET", `/v1/webhook-events?${search}`, org.viewer)).status).toBe(400);
    }
  });

  it("shows one event with its payload and stored headers; other organizations get 404", async () => {
    const detail = await t.call("GET", `/v1/webhook-events/${ids.paid}`, org.viewer);
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      id: ids.paid,
      payload: { type: "invoice.paid", data: { n: 1 } },
      headers: { "webhook-id": expect.stringMatching(/^msg_/) },
      deliveries: [],
    });
    expect(detail.body.headers).not.toHaveProperty("webhook-signature");
    expect(detail.body).not.toHaveProperty("rawBody");
    for (const id of [ids.paid, ids.unassigned]) {
      expect((await t.call("GET", `/v1/webhook-events/${id}`, other.admin)).status).toBe(404);
      expect((await t.call("POST", `/v1/webhook-events/${id}/replay`, other.admin)).status).toBe(
        404,
      );
    }
    expect((await t.call("GET", "/v1/webhook-events", other.viewer)).body.items).toEqual([]);
    expect((await t.call("GET", "/v1/webhook-events", t.operatorToken)).status).toBe(403);
  });

  it("lets operators see every organization's events and the unassigned ones", async () => {
    const unassigned = await t.call(
      "GET",
      "/v1/operator/webhook-events?status=unassigned",
      t.operatorToken,
    );
    expect(unassigned.status, unassigned.text).toBe(200);
    expect(unassigned.body.items).toEqual([
      expect.objectContaining({ id: ids.unassigned, organizationId: null, targetKey: "shared" }),
    ]);
    const ofOrg = await t.call(
      "GET",
      `/v1/operator/webhook-events?organizationId=${org.id}`,
      t.operatorToken,
    );
    expect(ofOrg.body.items).toHaveLength(3);
    const detail = await t.call(
      "GET",
      `/v1/operator/webhook-events/${ids.unassigned}`,
      t.operatorToken,
    );
    expect(detail.body).toMatchObject({
      organizationId: null,
      status: "unassigned",
      payload: { type: "thing.happened" },
    });
    expect((await t.call("GET", "/v1/operator/webhook-events", org.admin)).status).toBe(403);
  });
});

describe("replay", () => {
  it("delivers an event again to every subscription that wants it now", async () => {
    const subscribe = async (eventTypes: string[]) =>
      (
        await t.call("POST", "/v1/webhook-subscriptions", org.member, {
          url: PUBLIC_URL,
          eventTypes,
        })
      ).body.id as string;
    const invoices = await subscribe(["http-api.invoice.*"]);
    const everything = await subscribe(["*"]);
    await subscribe(["github.*"]);

    expect((await t.call("POST", `/v1/webhook-events/${ids.paid}/replay`, org.viewer)).status).toBe(
      403,
    );
    const replayed = await t.call("POST", `/v1/webhook-events/${ids.paid}/replay`, org.member);
    expect(replayed.status, replayed.text).toBe(202);
    expect(replayed.body.inFlight).toEqual([]);
    const deliveries: { id: string; subscriptionId: string; status: string }[] =
      replayed.body.deliveries;
    expect(deliveries.map((d) => d.subscriptionId).sort()).toEqual([invoices, everything].sort());
    expect(deliveries.every((d) => d.status === "pending")).toBe(true);
    for (const delivery of deliveries) expect(await deliverJobs(delivery.id)).toEqual([1]);

    // Again: the same deliveries, each given a fresh attempt (the next attempt number), and a
    // dead one is pending again.
    const dead = deliveries[0]!;
    await t.deps.database.db
      .update(webhookDeliveries)
      .set({ status: "dead", attempts: 8, nextAttemptAt: null })
      .where(eq(webhookDeliveries.id, dead.id));
    const again = await t.call("POST", `/v1/webhook-events/${ids.paid}/replay`, org.member);
    expect(again.body.deliveries.map((d: { id: string }) => d.id).sort()).toEqual(
      deliveries.map((d) => d.id).sort(),
    );
    expect(again.body.deliveries.find((d: { id: string }) => d.id === dead.id)).toMatchObject({
      status: "pending",
      attempts: 8,
    });
    expect(await deliverJobs(dead.id)).toEqual([1, 9]);

    // A delivery whose attempt is running (its row locked by the worker) is left alone.
    const reserved = await t.deps.database.sql.reserve();
    try {
      await reserved`begin`;
      await reserved`select id from webhook_deliveries where id = ${dead.id} for update`;
      const busy = await t.call("POST", `/v1/webhook-events/${ids.paid}/replay`, org.member);
      expect(busy.status).toBe(202);
      expect(busy.body.inFlight).toEqual([dead.id]);
      const single = await t.call("POST", `/v1/webhook-deliveries/${dead.id}/replay`, org.member);
      expect(single.status).toBe(409);
      expect(single.body.error.code).toBe("delivery_in_progress");
    } finally {
      await reserved`rollback`;
      reserved.release();
    }

    const detail = await t.call("GET", `/v1/webhook-deliveries/${dead.id}`, org.viewer);
    expect(detail.body).toMatchObject({ id: dead.id, eventId: ids.paid, attemptHistory: [] });
    expect((await t.call("GET", `/v1/webhook-deliveries/${dead.id}`, other.admin)).status).toBe(
      404,
    );
    expect(
      (await t.call("POST", `/v1/webhook-deliveries/${dead.id}/replay`, other.admin)).status,
    ).toBe(404);
  });

  it("marks an event nobody wanted as processed once a replay queued a delivery", async () => {
    await t.deps.database.db
      .update(webhookEvents)
      .set({ status: "ignored" })
      .where(eq(webhookEvents.id, ids.created));
    const replayed = await t.call("POST", `/v1/webhook-events/${ids.created}/replay`, org.member);
    expect(replayed.body.deliveries).toHaveLength(1);
    const detail = await t.call("GET", `/v1/webhook-events/${ids.created}`, org.viewer);
    expect(detail.body).toMatchObject({ status: "processed" });
    expect(detail.body.deliveries).toHaveLength(1);
  });
});

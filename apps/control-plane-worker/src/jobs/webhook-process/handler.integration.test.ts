import { createHmac, randomUUID } from "node:crypto";
import {
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedTarget,
} from "@keyway/control-plane-api/internal/fixtures";
import { createTestApp, type TestApp } from "@keyway/control-plane-api/testing/test-app";
import { newId, webhookDeliveries, webhookEvents, webhookSubscriptions } from "@keyway/db";
import { JOB_SCHEMA, webhookDeliverQueue } from "@keyway/jobs";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestWorkerDeps, startTestWorker } from "../../testing/test-worker";
import { fanOutWebhookEvents, processWebhookEvent, recordProcessingFailure } from "./handler";

const SECRET = "gh-secret-process";

let t: TestApp;
let organizationId: string;
let otherOrganizationId: string;
let github: SeededTarget;

beforeAll(async () => {
  t = await createTestApp();
  const db = t.deps.database.db;
  organizationId = await seedOrganization(db, t.clock, "Processing org");
  otherOrganizationId = await seedOrganization(db, t.clock, "Other org");
  github = await seedTarget(db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: SECRET },
  });
  await seedConnection(db, t.deps, {
    organizationId,
    target: github,
    methodId: "github-app",
    externalSubjectId: "500",
  });
});
afterAll(async () => {
  await t.close();
});

async function subscribe(orgId: string, eventTypes: string[], enabled = true) {
  const id = newId("webhookSubscription", t.clock.now());
  await t.deps.database.db.insert(webhookSubscriptions).values({
    id,
    organizationId: orgId,
    url: "https://subscriber.example.com/hooks",
    eventTypes,
    secretCiphertext: "not-used-by-processing",
    enabled,
    createdBy: "test",
  });
  return id;
}

/** A signed GitHub delivery through the real front door; returns the stored event id. */
async function receive(event: string, action: string): Promise<string> {
  const body = JSON.stringify({ action, installation: { id: 500 } });
  const response = await t.app.request(`/p/integration/webhooks/${github.targetKey}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": randomUUID(),
      "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`,
    },
    body,
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

async function eventRow(id: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(webhookEvents)
    .where(eq(webhookEvents.id, id));
  return row;
}

async function deliveriesOf(eventId: string) {
  return t.deps.database.db
    .select()
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.eventId, eventId));
}

async function deliverJobs(deliveryIds: string[]) {
  const rows = await t.deps.database.db.execute<{ delivery: string }>(
    sql`select data->>'deliveryId' as delivery from ${sql.identifier(JOB_SCHEMA)}.job
        where name = ${webhookDeliverQueue.name}`,
  );
  return rows.map((r) => r.delivery).filter((id) => deliveryIds.includes(id));
}

describe("fanOutWebhookEvents", () => {
  it("fans out to matching subscriptions of the event's organization only, once", async () => {
    const deps = createTestWorkerDeps(t);
    const wildcard = await subscribe(organizationId, ["github.pull_request.*"]);
    const exact = await subscribe(organizationId, ["github.pull_request.opened", "slack.*"]);
    await subscribe(organizationId, ["github.issues.*"]);
    await subscribe(organizationId, ["*"], false);
    await subscribe(otherOrganizationId, ["*"]);

    const eventId = await receive("pull_request", "opened");
    const fannedOut = await fanOutWebhookEvents(deps, [eventId]);
    expect(fannedOut).toEqual({ outcomes: new Map([[eventId, "processed"]]), created: 2 });
    const deliveries = await deliveriesOf(eventId);
    expect(deliveries.map((d) => d.subscriptionId).sort()).toEqual([wildcard, exact].sort());
    expect(
      deliveries.every(
        (d) => d.status === "pending" && d.attempts === 0 && d.organizationId === organizationId,
      ),
    ).toBe(true);
    // No job: the fan-out job makes the first attempts itself.
    expect(await deliverJobs(deliveries.map((d) => d.id))).toEqual([]);
    expect(await eventRow(eventId)).toMatchObject({ status: "processed", attempts: 1 });

    // A second run (a crash after commit, another replica) adds nothing.
    expect(await fanOutWebhookEvents(deps, [eventId])).toEqual({ outcomes: new Map(), created: 0 });
    expect(await deliveriesOf(eventId)).toHaveLength(2);
    await deps.jobs.stop();
  });
});

describe("processWebhookEvent", () => {
  it("marks an event no subscription wants as ignored", async () => {
    const deps = createTestWorkerDeps(t);
    const eventId = await receive("workflow_run", "completed");
    expect(await processWebhookEvent(deps, eventId)).toBe("ignored");
    expect(await eventRow(eventId)).toMatchObject({ status: "ignored" });
    expect(await deliveriesOf(eventId)).toHaveLength(0);
    await deps.jobs.stop();
  });

  it("records failures, and marks the event failed after the last retry", async () => {
    const deps = createTestWorkerDeps(t);
    const eventId = await receive("issues", "closed");
    await recordProcessingFailure(deps, eventId, new Error("first"), false);
    expect(await eventRow(eventId)).toMatchObject({
      status: "received",
      attempts: 1,
      lastError: "first",
    });
    await recordProcessingFailure(deps, eventId, new Error("last"), true);
    expect(await eventRow(eventId)).toMatchObject({
      status: "failed",
      attempts: 2,
      lastError: "last",
    });
    await deps.jobs.stop();
  });
});

describe("the worker", () => {
  it("processes what the front door stored, through pg-boss", async () => {
    const deps = createTestWorkerDeps(t);
    const worker = await startTestWorker(deps);
    try {
      const eventId = await receive("pull_request", "closed");
      let status: string | undefined;
      for (let i = 0; i < 100 && status !== "processed"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        status = (await eventRow(eventId))?.status;
      }
      expect(status).toBe("processed");
      expect((await deliveriesOf(eventId)).length).toBeGreaterThan(0);
    } finally {
      await worker.stop();
    }
  });
});

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  startTestSubscriber,
  type TestSubscriber,
  verifyWithReferenceLibrary,
} from "@keyway/control-plane-worker/testing/webhook-subscriber";
import { generateStandardWebhookSecret, signStandardWebhook } from "@keyway/integrations-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrganization, type Stack, startStack, stringAt } from "./support/stack";

/**
 * SPEC §8, at-least-once delivery across a worker crash: the worker process (its bundle, as
 * deployed) is SIGKILLed while a subscriber holds an attempt's request open — the first attempt,
 * which the fan-out job makes itself after committing the delivery, so the fan-out job is the one
 * left uncompleted and handed out again. Nothing is lost:
 * after a restart the delivery completes, and the attempt records stay consistent (the killed
 * attempt left none — its transaction died with the process — and the one that succeeded is
 * attempt 1). The subscriber verifies every request with the reference Standard Webhooks library.
 *
 * Short timeouts make the killed worker's job expire soon (`webhooks.delivery.*` → the fan-out
 * and deliver queues' expiry), and maintenance runs every second.
 */
let stack: Stack;
let subscriber: TestSubscriber;
const INBOUND_SECRET = generateStandardWebhookSecret();

beforeAll(async () => {
  stack = await startStack("webhook_crash", {
    env: {
      KEYWAY_WEBHOOKS__ALLOW_PRIVATE_SUBSCRIBERS: "true",
      KEYWAY_WEBHOOKS__DELIVERY__CONNECT_TIMEOUT_MS: "1000",
      KEYWAY_WEBHOOKS__DELIVERY__RESPONSE_TIMEOUT_MS: "5000",
      KEYWAY_WORKER__MAINTENANCE_INTERVAL_SECONDS: "1",
    },
  });
  subscriber = await startTestSubscriber();
});

afterAll(async () => {
  subscriber?.release(503);
  await subscriber?.close();
  await stack?.close();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 900; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Delivery {
  id: string;
  status: string;
  attempts: number;
  attemptHistory: { attempt: number; responseStatus: number | null; error: string | null }[];
}

describe("a worker killed mid-delivery", () => {
  it("completes the delivery after a restart; nothing is lost", async () => {
    const op = stack.operatorToken;
    await stack.apiOk(op, "POST", "/v1/operator/targets", {
      targetKey: "acme",
      variantId: "http-api",
      config: { baseUrl: "https://api.acme.example/v1", webhook: { scheme: "standard-webhooks" } },
      secrets: { webhookSecret: INBOUND_SECRET },
    });
    const admin = await createOrganization(stack, "Crash test");
    await stack.apiOk(admin, "POST", "/v1/integration/connections", {
      targetKey: "acme",
      methodId: "api-key",
      displayName: "Acme",
      secrets: { apiKey: "acme-key-0001" },
    });
    const subscription = await stack.apiOk(admin, "POST", "/v1/webhook-subscriptions", {
      url: `${subscriber.url}/hooks`,
      eventTypes: ["http-api.*"],
    });
    const secret = stringAt(subscription, "secret");

    // The first request is held open; later ones are answered 200.
    subscriber.answer("hold");
    subscriber.fallback({ status: 200 });
    const first = await stack.startWorker();

    const body = JSON.stringify({ type: "invoice.paid", data: { amount: 42 } });
    const received = await fetch(`${stack.apiUrl}/p/integration/webhooks/acme`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...signStandardWebhook({
          secret: INBOUND_SECRET,
          id: `msg_${randomUUID()}`,
          timestamp: Math.floor(Date.now() / 1000),
          body,
        }),
      },
      body,
    });
    expect(received.status).toBe(202);
    const eventId = stringAt(await received.json(), "id");

    await subscriber.waitForRequests(1, 60_000);
    await first.kill();

    // Killed mid-attempt: the delivery is pending and no attempt was recorded.
    const event = await stack.apiOk(admin, "GET", `/v1/webhook-events/${eventId}`);
    const [pending] = (event as { deliveries: Delivery[] }).deliveries;
    expect(pending).toMatchObject({ status: "pending", attempts: 0, attemptHistory: [] });

    const second = await stack.startWorker();
    const delivered = await waitFor("the delivery to complete", async () => {
      const shown = (await stack.apiOk(admin, "GET", `/v1/webhook-deliveries/${pending!.id}`)) as
        | Delivery
        | undefined;
      return shown?.status === "delivered" ? shown : undefined;
    });
    expect(delivered).toMatchObject({ status: "delivered", attempts: 1 });
    expect(delivered.attemptHistory).toEqual([
      expect.objectContaining({ attempt: 1, responseStatus: 200, error: null }),
    ]);

    // At least once: the subscriber saw the message twice, the same message both times.
    expect(subscriber.received.length).toBeGreaterThanOrEqual(2);
    for (const request of subscriber.received) {
      expect(request.headers["webhook-id"]).toBe(eventId);
      expect(verifyWithReferenceLibrary(request, secret)).toEqual({
        type: "http-api.invoice.paid",
        timestamp: expect.any(String),
        data: { type: "invoice.paid", data: { amount: 42 } },
      });
    }
    const again = (await stack.apiOk(admin, "GET", `/v1/webhook-events/${eventId}`)) as {
      deliveries: Delivery[];
    };
    expect(again.deliveries.map((d) => d.id)).toEqual([pending!.id]);

    await second.stop();
    for (const output of [first.output(), second.output()]) expect(output).not.toContain(secret);
  });
});

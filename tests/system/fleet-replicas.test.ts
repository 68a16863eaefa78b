import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { readSettingFile, requireSetting } from "@keyway/config";
import {
  startTestSubscriber,
  type TestSubscriber,
} from "@keyway/control-plane-worker/testing/webhook-subscriber";
import { parsePrivateKey, signGatewayAssertion } from "@keyway/crypto";
import { generateStandardWebhookSecret, signStandardWebhook } from "@keyway/integrations-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  apiClient,
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  type GatewayProcess,
  type RecordingUpstream,
  revokeSession,
  type Stack,
  type StartedSession,
  sendThroughGateway as send,
  startRecordingUpstream,
  startSession,
  startSessionWith,
  startStack,
  stringAt,
  untilRefused,
  type WorkerProcess,
} from "./support/stack";

/**
 * Keyway as a fleet (SPEC §6.8): two control-plane API processes (A and B), two gateways (one
 * talking to each API), two workers, one PostgreSQL — every one a real process running its
 * bundle. Clients alternate between the API replicas, as behind a load balancer. What must hold
 * across replicas: a revocation through A reaches both gateways within a second; a key rotated
 * through B is what A's gateway injects next; a gateway assertion spent at one API is refused by
 * the other; and with both workers polling, each webhook is delivered once.
 */

let stack: Stack;
/** The two API replicas, each as the `Stack` view its clients use. */
let apiA: Stack;
let apiB: Stack;
let gatewayA: GatewayProcess;
let gatewayB: GatewayProcess;
let workers: WorkerProcess[];
let upstream: RecordingUpstream;
let subscriber: TestSubscriber;

const INBOUND_SECRET = generateStandardWebhookSecret();

beforeAll(async () => {
  stack = await startStack("fleet", {
    controlPlaneProcess: true,
    env: {
      KEYWAY_WEBHOOKS__ALLOW_PRIVATE_SUBSCRIBERS: "true",
      KEYWAY_WORKER__MAINTENANCE_INTERVAL_SECONDS: "1",
    },
  });
  const replicaB = await stack.startReplicaProcess();
  apiA = stack;
  apiB = { ...stack, apiUrl: replicaB.url, ...apiClient(replicaB.url) };
  gatewayA = stack.gateway;
  gatewayB = await stack.startGateway({ controlPlaneUrl: replicaB.url });
  workers = await Promise.all([stack.startWorker(), stack.startWorker()]);
  upstream = await startRecordingUpstream();
  subscriber = await startTestSubscriber();
});

afterAll(async () => {
  await subscriber?.close();
  await upstream?.close();
  await stack?.close();
});

/** The session's proxy URL pointed at `gateway` (same token). */
function via(gateway: GatewayProcess, session: StartedSession): string {
  return `http://session:${session.token}@${new URL(gateway.proxyUrl).host}`;
}

describe("a session revoked through replica A", () => {
  it("is refused by both gateways within a second; other sessions keep working", async () => {
    await createHttpApiTarget(apiA, "fleet-revocation", { baseUrl: `${upstream.url}/v1` });
    const orgToken = await createOrganization(apiB, "Fleet revocation");
    const connectionId = await createApiKeyConnection(apiA, orgToken, {
      targetKey: "fleet-revocation",
      secrets: { apiKey: "sk-fleet-revocation-1" },
    });
    const doomed = await startSessionWith(apiB, orgToken, [{ connectionId, kind: "connector" }]);
    const bystander = await startSession(apiA, orgToken, doomed.profileId);
    const url = `${upstream.url}/v1/revocation`;
    // Both sessions confirmed live, and the plan's credential cached, on both gateways.
    for (const gateway of [gatewayA, gatewayB]) {
      expect(await send(via(gateway, doomed), url)).toBe("200");
      expect(await send(via(gateway, bystander), url)).toBe("200");
    }

    expect(await revokeSession(apiA.apiUrl, orgToken, doomed.id)).toBe(204);
    const [atA, atB] = await Promise.all([
      untilRefused(via(gatewayA, doomed), url, 5_000),
      untilRefused(via(gatewayB, doomed), url, 5_000),
    ]);
    expect(atA.answer).toContain("407");
    expect(atB.answer).toContain("407");
    expect(atA.elapsedMs).toBeLessThan(1_000);
    expect(atB.elapsedMs).toBeLessThan(1_000);
    for (const gateway of [gatewayA, gatewayB]) {
      expect(await send(via(gateway, bystander), url)).toBe("200");
    }
  });
});

describe("a connection key rotated through replica B", () => {
  it("is the credential gateway A injects next (A learns of it from its own API replica)", async () => {
    await createHttpApiTarget(apiB, "fleet-rotation", { baseUrl: `${upstream.url}/v1` });
    const orgToken = await createOrganization(apiA, "Fleet rotation");
    const connectionId = await createApiKeyConnection(apiB, orgToken, {
      targetKey: "fleet-rotation",
      secrets: { apiKey: "sk-fleet-rotation-old" },
    });
    const session = await startSessionWith(apiA, orgToken, [{ connectionId, kind: "connector" }]);
    const url = `${upstream.url}/v1/rotation`;
    const injected = async (gateway: GatewayProcess) => {
      expect(await send(via(gateway, session), url)).toBe("200");
      return upstream.last().headers.authorization;
    };
    expect(await injected(gatewayA)).toBe("Bearer sk-fleet-rotation-old");
    expect(await injected(gatewayB)).toBe("Bearer sk-fleet-rotation-old");

    await apiB.apiOk(orgToken, "POST", `/v1/integration/connections/${connectionId}/secret`, {
      secrets: { apiKey: "sk-fleet-rotation-new" },
    });
    const rotatedAt = performance.now();
    let seen = await injected(gatewayA);
    while (seen !== "Bearer sk-fleet-rotation-new" && performance.now() - rotatedAt < 5_000) {
      await sleep(50);
      seen = await injected(gatewayA);
    }
    expect(seen).toBe("Bearer sk-fleet-rotation-new");
    expect(performance.now() - rotatedAt).toBeLessThan(1_000);
    // Never the old one again, on either gateway.
    expect(await injected(gatewayA)).toBe("Bearer sk-fleet-rotation-new");
    expect(await injected(gatewayB)).toBe("Bearer sk-fleet-rotation-new");
  });
});

describe("a gateway assertion", () => {
  /** A client assertion signed exactly as the gateways sign theirs (their configured identity). */
  async function gatewayAssertion(): Promise<string> {
    const identity = requireSetting(stack.config.gateway.identity, "gateway.identity");
    const keyText =
      identity.private_key ??
      (await readSettingFile(
        requireSetting(identity.private_key_path, "gateway.identity.private_key_path"),
        "gateway.identity.private_key_path",
      ));
    const key = await parsePrivateKey(keyText);
    return signGatewayAssertion({
      gatewayId: identity.gateway_id,
      privateJwk: key.privateJwk,
      kid: key.kid,
      audience: stack.config.internal.audience,
      clock: { now: () => new Date() },
    });
  }

  async function liveness(apiUrl: string, assertion: string): Promise<number> {
    const response = await fetch(`${apiUrl}/internal/v1/sessions/liveness`, {
      method: "POST",
      headers: { authorization: `Bearer ${assertion}`, "content-type": "application/json" },
      body: JSON.stringify({ sessionIds: ["sess_fleet_unknown"] }),
    });
    await response.body?.cancel();
    return response.status;
  }

  it("is accepted once: replayed to the other replica, it is refused", async () => {
    const spentAtA = await gatewayAssertion();
    expect(await liveness(apiA.apiUrl, spentAtA)).toBe(200);
    expect(await liveness(apiB.apiUrl, spentAtA)).toBe(401);

    const spentAtB = await gatewayAssertion();
    expect(await liveness(apiB.apiUrl, spentAtB)).toBe(200);
    expect(await liveness(apiA.apiUrl, spentAtB)).toBe(401);
  });
});

describe("webhooks while both workers run", () => {
  it("delivers each event once", async () => {
    await apiA.apiOk(stack.operatorToken, "POST", "/v1/operator/targets", {
      targetKey: "fleet-hooks",
      variantId: "http-api",
      config: { baseUrl: "https://api.fleet.example/v1", webhook: { scheme: "standard-webhooks" } },
      secrets: { webhookSecret: INBOUND_SECRET },
    });
    const orgToken = await createOrganization(apiB, "Fleet webhooks");
    await createApiKeyConnection(apiA, orgToken, {
      targetKey: "fleet-hooks",
      secrets: { apiKey: "sk-fleet-hooks" },
    });
    await apiB.apiOk(orgToken, "POST", "/v1/webhook-subscriptions", {
      url: `${subscriber.url}/hooks`,
      eventTypes: ["http-api.*"],
    });

    const EVENTS = 20;
    const eventIds: string[] = [];
    for (let i = 0; i < EVENTS; i++) {
      const ingestUrl = i % 2 === 0 ? apiA.apiUrl : apiB.apiUrl;
      const body = JSON.stringify({ type: "invoice.paid", data: { n: i } });
      const received = await fetch(`${ingestUrl}/p/integration/webhooks/fleet-hooks`, {
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
      eventIds.push(stringAt(await received.json(), "id"));
    }

    // Every delivery reaches `delivered`, after one attempt, as either worker recorded it.
    const statusOf = async (eventId: string, client: Stack) => {
      const event = (await client.apiOk(orgToken, "GET", `/v1/webhook-events/${eventId}`)) as {
        deliveries: { status: string; attempts: number }[];
      };
      return event.deliveries;
    };
    const deadline = performance.now() + 60_000;
    for (const [i, eventId] of eventIds.entries()) {
      let deliveries = await statusOf(eventId, i % 2 === 0 ? apiB : apiA);
      while (deliveries[0]?.status !== "delivered" && performance.now() < deadline) {
        await sleep(100);
        deliveries = await statusOf(eventId, i % 2 === 0 ? apiB : apiA);
      }
      expect(deliveries).toEqual([expect.objectContaining({ status: "delivered", attempts: 1 })]);
    }

    // Counted at the subscriber: each event's message arrived exactly once.
    const ids = subscriber.received.map((request) => String(request.headers["webhook-id"]));
    expect(ids.sort()).toEqual([...eventIds].sort());
    const attempts = workers.map(
      (worker) => worker.output().split('"msg":"webhook delivery attempt"').length - 1,
    );
    expect(attempts.reduce((a, b) => a + b, 0)).toBe(EVENTS);
  });
});

import { auditLog, webhookSubscriptions } from "@keyway/db";
import { decodeStandardWebhookSecret } from "@keyway/integrations-core";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptSubscriptionSecret } from "../credentials/secret-store";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";

/**
 * `/v1/webhook-subscriptions` (SPEC §8): CRUD by role, the signing secret shown once and stored
 * encrypted, rotation with an overlap, and subscriber URLs held to the egress private-address
 * rules unless the operator allows private subscribers.
 */
let t: TestApp;
const clock = createTestClock();
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;
const BASE = "/v1/webhook-subscriptions";
/** A public address literal: no DNS needed, and never private. */
const PUBLIC_URL = "https://93.184.215.14/hooks?source=keyway";

beforeAll(async () => {
  t = await createTestApp({ clock });
  org = await t.createOrganization("Subscribers");
  other = await t.createOrganization("Others");
});
afterAll(async () => {
  await t.close();
});

async function stored(id: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(webhookSubscriptions)
    .where(eq(webhookSubscriptions.id, id));
  return row;
}

async function auditActions(subjectId: string) {
  const rows = await t.deps.database.db
    .select({ action: auditLog.action, actor: auditLog.actor })
    .from(auditLog)
    .where(eq(auditLog.subjectId, subjectId));
  return rows.map((row) => row.action);
}

describe("webhook subscriptions", () => {
  it("shows the signing secret once, at creation, and stores it encrypted", async () => {
    const created = await t.call("POST", BASE, org.member, {
      url: PUBLIC_URL,
      description: "billing\nsystem",
      eventTypes: ["github.pull_request.*", "http-api.invoice.paid", "github.pull_request.*"],
    });
    expect(created.status, created.text).toBe(201);
    const { id, secret } = created.body;
    expect(created.body).toMatchObject({
      url: PUBLIC_URL,
      description: "billing\nsystem",
      eventTypes: ["github.pull_request.*", "http-api.invoice.paid"],
      enabled: true,
      disabledReason: null,
      previousSecretExpiresAt: null,
    });
    expect(secret).toMatch(/^whsec_/);
    expect(decodeStandardWebhookSecret(secret)?.length).toBeGreaterThanOrEqual(24);

    const row = await stored(id);
    expect(row?.secretCiphertext).not.toContain(secret.slice(6));
    expect(decryptSubscriptionSecret(t.deps.keyRing, id, "current", row!.secretCiphertext)).toBe(
      secret,
    );

    const listed = await t.call("GET", BASE, org.viewer);
    const shown = await t.call("GET", `${BASE}/${id}`, org.viewer);
    expect(listed.body.items.map((s: { id: string }) => s.id)).toContain(id);
    expect(shown.status).toBe(200);
    for (const answer of [listed, shown]) {
      expect(answer.text).not.toContain(secret);
      expect(answer.text).not.toContain('"secret"');
    }
    expect(await auditActions(id)).toEqual(["webhook_subscription.created"]);
  });

  it("lets viewers read, members write and admins delete", async () => {
    const body = { url: PUBLIC_URL, eventTypes: ["*"] };
    expect((await t.call("POST", BASE, org.viewer, body)).status).toBe(403);
    expect((await t.call("POST", BASE, t.operatorToken, body)).status).toBe(403);
    const created = await t.call("POST", BASE, org.member, body);
    const id = created.body.id;
    expect((await t.call("PATCH", `${BASE}/${id}`, org.viewer, { description: "x" })).status).toBe(
      403,
    );
    expect((await t.call("POST", `${BASE}/${id}/rotate-secret`, org.viewer)).status).toBe(403);
    expect((await t.call("DELETE", `${BASE}/${id}`, org.member)).status).toBe(403);
    expect((await t.call("DELETE", `${BASE}/${id}`, org.admin)).status).toBe(204);
    expect((await t.call("GET", `${BASE}/${id}`, org.viewer)).status).toBe(404);
    expect(await stored(id)).toBeUndefined();
    expect(await auditActions(id)).toEqual([
      "webhook_subscription.created",
      "webhook_subscription.deleted",
    ]);
  });

  it("answers 404 for another organization's subscription, and changes nothing", async () => {
    const created = await t.call("POST", BASE, org.member, { url: PUBLIC_URL, eventTypes: ["*"] });
    const id = created.body.id;
    const before = await stored(id);
    for (const [method, path, body] of [
      ["GET", `${BASE}/${id}`, undefined],
      ["PATCH", `${BASE}/${id}`, { enabled: false }],
      ["DELETE", `${BASE}/${id}`, undefined],
      ["POST", `${BASE}/${id}/rotate-secret`, undefined],
    ] as const) {
      const answer = await t.call(method, path, other.admin, body);
      expect(answer.status, `${method} ${path}`).toBe(404);
      expect(answer.body.error.code).toBe("not_found");
    }
    expect((await t.call("GET", BASE, other.viewer)).body.items).toEqual([]);
    expect(await stored(id)).toEqual(before);
  });

  it("refuses malformed filters and URLs with 400 naming the field", async () => {
    for (const [body, field] of [
      [{ url: PUBLIC_URL, eventTypes: ["github.PUSH"] }, "eventTypes.0"],
      [{ url: PUBLIC_URL, eventTypes: ["github.*.opened"] }, "eventTypes.0"],
      [{ url: PUBLIC_URL, eventTypes: [] }, "eventTypes"],
      [{ url: "ftp://93.184.215.14/x", eventTypes: ["*"] }, "url"],
      [{ url: "https://user:pw@93.184.215.14/x", eventTypes: ["*"] }, "url"],
      [{ url: "https://93.184.215.14/x#frag", eventTypes: ["*"] }, "url"],
      [{ url: "https://93.184.215.14/x\n", eventTypes: ["*"] }, "url"],
      [{ url: PUBLIC_URL, eventTypes: ["*"], secret: "whsec_mine" }, ""],
    ] as const) {
      const answer = await t.call("POST", BASE, org.member, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error.details.issues.map((i: { field: string }) => i.field)).toContain(
        field,
      );
    }
  });

  it("refuses URLs resolving to private addresses, when written and when changed", async () => {
    const cases = [
      "http://localhost:8080/hooks",
      "http://127.0.0.1/hooks",
      "http://[::1]/hooks",
      "http://169.254.169.254/latest/meta-data",
      "http://10.1.2.3/hooks",
      "http://[::ffff:192.168.0.1]/hooks",
    ];
    for (const url of cases) {
      const answer = await t.call("POST", BASE, org.member, { url, eventTypes: ["*"] });
      expect(answer.status, url).toBe(422);
      expect(answer.body.error.code).toBe("subscriber_url_private");
    }
    const unresolvable = await t.call("POST", BASE, org.member, {
      url: "https://hooks.keyway-test.invalid/",
      eventTypes: ["*"],
    });
    expect(unresolvable.status).toBe(422);
    expect(unresolvable.body.error.code).toBe("subscriber_url_unresolvable");

    const created = await t.call("POST", BASE, org.member, { url: PUBLIC_URL, eventTypes: ["*"] });
    const before = await stored(created.body.id);
    const changed = await t.call("PATCH", `${BASE}/${created.body.id}`, org.member, {
      url: "http://localhost/hooks",
      description: "would change",
    });
    expect(changed.status).toBe(422);
    expect(changed.body.error.code).toBe("subscriber_url_private");
    expect(await stored(created.body.id)).toEqual(before);
  });

  it("accepts private subscribers when the operator allows them (on-premises)", async () => {
    const onPremises = await createTestApp({ settings: { allowPrivateWebhookSubscribers: true } });
    try {
      const tenant = await onPremises.createOrganization("On premises");
      const answer = await onPremises.call("POST", BASE, tenant.member, {
        url: "http://localhost:8080/hooks",
        eventTypes: ["*"],
      });
      expect(answer.status, answer.text).toBe(201);
    } finally {
      await onPremises.close();
    }
  });

  it("updates, disables and enables a subscription", async () => {
    const created = await t.call("POST", BASE, org.member, {
      url: PUBLIC_URL,
      eventTypes: ["github.push"],
      enabled: false,
    });
    expect(created.body).toMatchObject({ enabled: false, disabledReason: "disabled_by_user" });
    const id = created.body.id;
    const updated = await t.call("PATCH", `${BASE}/${id}`, org.member, {
      url: "https://93.184.215.15/v2",
      eventTypes: ["slack.*"],
      description: "moved",
      enabled: true,
    });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.body).toMatchObject({
      url: "https://93.184.215.15/v2",
      eventTypes: ["slack.*"],
      description: "moved",
      enabled: true,
      disabledReason: null,
    });
    const cleared = await t.call("PATCH", `${BASE}/${id}`, org.member, { description: null });
    expect(cleared.body.description).toBeNull();
    expect((await t.call("PATCH", `${BASE}/${id}`, org.member, {})).status).toBe(400);
    expect(await auditActions(id)).toEqual([
      "webhook_subscription.created",
      "webhook_subscription.updated",
      "webhook_subscription.updated",
    ]);
  });

  it("rotates the secret with an overlap during which the previous one still signs", async () => {
    const created = await t.call("POST", BASE, org.member, { url: PUBLIC_URL, eventTypes: ["*"] });
    const id = created.body.id;
    const first: string = created.body.secret;

    const rotated = await t.call("POST", `${BASE}/${id}/rotate-secret`, org.member);
    expect(rotated.status, rotated.text).toBe(200);
    const second: string = rotated.body.secret;
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(first);
    const overlapEnd = new Date(t.clock.now().getTime() + 24 * 3_600_000).toISOString();
    expect(rotated.body.previousSecretExpiresAt).toBe(overlapEnd);
    let row = await stored(id);
    expect(decryptSubscriptionSecret(t.deps.keyRing, id, "current", row!.secretCiphertext)).toBe(
      second,
    );
    expect(
      decryptSubscriptionSecret(t.deps.keyRing, id, "previous", row!.previousSecretCiphertext!),
    ).toBe(first);
    expect((await t.call("GET", `${BASE}/${id}`, org.viewer)).text).not.toContain(second);

    // Rotating again during the overlap: the oldest secret no longer signs.
    const third = (await t.call("POST", `${BASE}/${id}/rotate-secret`, org.member)).body.secret;
    row = await stored(id);
    expect(
      decryptSubscriptionSecret(t.deps.keyRing, id, "previous", row!.previousSecretCiphertext!),
    ).toBe(second);
    expect(decryptSubscriptionSecret(t.deps.keyRing, id, "current", row!.secretCiphertext)).toBe(
      third,
    );

    // Once the overlap has ended, the subscription no longer shows one.
    clock.advance(24 * 3_600_000 + 1);
    try {
      expect((await t.call("GET", `${BASE}/${id}`, org.viewer)).body.previousSecretExpiresAt).toBe(
        null,
      );
    } finally {
      clock.advance(-(24 * 3_600_000 + 1));
    }
    expect(await auditActions(id)).toEqual([
      "webhook_subscription.created",
      "webhook_subscription.secret_rotated",
      "webhook_subscription.secret_rotated",
    ]);
  });
});

import { generateKeyPairSync, randomUUID } from "node:crypto";
import { OAuth2Error } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubEnterpriseServerTargetConfigSchema } from "../github-enterprise-server/target-config-schema";
import { createGitHubAppWebhookStandIn } from "../testing/github-app-webhook-stand-in";
import { nextPageCursor } from "./api-client";
import {
  type AppWebhookDelivery,
  githubAppWebhookTarget,
  listAppWebhookDeliveries,
  redeliverAppWebhookDelivery,
  unansweredDeliveries,
} from "./app-webhook-deliveries";
import type { GitHubTargetWithSecrets } from "./target-config";

function rsaKeyPair() {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}
const app = rsaKeyPair();
const otherApp = rsaKeyPair();

const now = new Date("2025-06-01T12:00:00Z");
const clock = { now: () => now };
const hoursAgo = (hours: number) => new Date(now.getTime() - hours * 3_600_000);

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());
// Looked up per call so requests go through msw's patched fetch.
const fetch: typeof globalThis.fetch = (input, init) => globalThis.fetch(input, init);

function cloudTarget(privateKeyPem = app.privateKey): GitHubTargetWithSecrets {
  return {
    id: "tgt_1",
    targetKey: "github",
    config: githubCloudTargetConfigSchema.parse({}),
    secrets: { clientId: "Iv23liApp", appPrivateKeyPem: privateKeyPem, webhookSecret: "whs" },
  };
}

function standIn(apiBaseUrl = "https://api.github.com", issuer = "Iv23liApp") {
  const github = createGitHubAppWebhookStandIn({
    apiBaseUrl,
    publicKeyPem: app.publicKey,
    issuer,
    now: clock.now,
  });
  server.use(...github.handlers);
  return github;
}

describe("listAppWebhookDeliveries", () => {
  it("follows the Link cursor and stops at the first page reaching past `since`", async () => {
    const github = standIn();
    // 250 deliveries, one every 6 minutes: 10 per hour, the oldest 25 h ago.
    for (let i = 0; i < 250; i++) {
      github.addDelivery({ guid: randomUUID(), deliveredAt: hoursAgo(i / 10), statusCode: 202 });
    }
    const listing = await listAppWebhookDeliveries({
      target: cloudTarget(),
      since: hoursAgo(15),
      maxPages: 10,
      fetch,
      clock,
    });
    expect(listing.truncated).toBe(false);
    expect(listing.deliveries).toHaveLength(151);
    expect(listing.deliveries.every((d) => d.deliveredAt >= hoursAgo(15))).toBe(true);
    // Page 2 (deliveries 100–199) reached past 15 h: page 3 was never asked for.
    expect(github.pagesServed).toBe(2);
  });

  it("stops after maxPages and says the listing was cut short", async () => {
    const github = standIn();
    for (let i = 0; i < 250; i++) {
      github.addDelivery({ guid: randomUUID(), deliveredAt: hoursAgo(i / 100), statusCode: 202 });
    }
    const listing = await listAppWebhookDeliveries({
      target: cloudTarget(),
      since: hoursAgo(24),
      maxPages: 2,
      fetch,
      clock,
    });
    expect(listing).toMatchObject({ truncated: true });
    expect(listing.deliveries).toHaveLength(200);
    expect(github.pagesServed).toBe(2);
  });

  it("reads the documented fields", async () => {
    const github = standIn();
    const guid = randomUUID();
    const made = github.addDelivery({
      guid,
      deliveredAt: hoursAgo(1),
      statusCode: 503,
      event: "pull_request",
      action: "closed",
    });
    const { deliveries } = await listAppWebhookDeliveries({
      target: cloudTarget(),
      since: hoursAgo(2),
      maxPages: 1,
      fetch,
      clock,
    });
    expect(deliveries).toEqual([
      {
        id: String(made.id),
        guid,
        deliveredAt: hoursAgo(1),
        redelivery: false,
        statusCode: 503,
        event: "pull_request",
        action: "closed",
      },
    ]);
  });

  it("is refused with 401 when the app JWT is not signed by the app's key", async () => {
    standIn();
    const failure = await listAppWebhookDeliveries({
      target: cloudTarget(otherApp.privateKey),
      since: hoursAgo(1),
      maxPages: 1,
      fetch,
      clock,
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OAuth2Error);
    expect(failure).toMatchObject({ kind: "permanent", code: "http_401", status: 401 });
    expect(String(failure)).not.toContain("BEGIN");
  });

  it("calls GitHub Enterprise Server on its API URL with the app id as issuer", async () => {
    const github = standIn("https://ghe.example.com/api/v3", "31337");
    github.addDelivery({ guid: randomUUID(), deliveredAt: hoursAgo(1), statusCode: 0 });
    const target: GitHubTargetWithSecrets = {
      id: "tgt_2",
      targetKey: "ghes",
      config: githubEnterpriseServerTargetConfigSchema.parse({
        webBaseUrl: "https://ghe.example.com",
      }),
      secrets: {
        appId: "31337",
        clientId: "Iv1.ghes",
        appPrivateKeyPem: app.privateKey,
        webhookSecret: "whs",
      },
    };
    const { deliveries } = await listAppWebhookDeliveries({
      target,
      since: hoursAgo(2),
      maxPages: 1,
      fetch,
      clock,
    });
    expect(deliveries).toHaveLength(1);
  });

  it("refuses an undocumented body as invalid_response", async () => {
    server.use(
      http.get("https://api.github.com/app/hook/deliveries", () =>
        HttpResponse.json({ deliveries: [] }),
      ),
    );
    await expect(
      listAppWebhookDeliveries({
        target: cloudTarget(),
        since: hoursAgo(1),
        maxPages: 1,
        fetch,
        clock,
      }),
    ).rejects.toMatchObject({ code: "invalid_response" });
  });
});

describe("redeliverAppWebhookDelivery", () => {
  it("asks for a new attempt; GitHub makes a redelivery of the same guid", async () => {
    const github = standIn();
    const guid = randomUUID();
    const failed = github.addDelivery({ guid, deliveredAt: hoursAgo(3), statusCode: 502 });
    const status = await redeliverAppWebhookDelivery({
      target: cloudTarget(),
      deliveryId: String(failed.id),
      fetch,
      clock,
    });
    expect(status).toBe(202);
    expect(github.deliveriesOf(guid).map((d) => d.redelivery)).toEqual([false, true]);
  });

  it("surfaces GitHub's refusal of an unknown delivery as a permanent 404", async () => {
    standIn();
    await expect(
      redeliverAppWebhookDelivery({ target: cloudTarget(), deliveryId: "1", fetch, clock }),
    ).rejects.toMatchObject({ kind: "permanent", status: 404 });
  });
});

describe("unansweredDeliveries", () => {
  const delivery = (
    guid: string,
    hours: number,
    statusCode: number,
    id = `${guid}-${hours}`,
  ): AppWebhookDelivery => ({
    id,
    guid,
    deliveredAt: hoursAgo(hours),
    redelivery: false,
    statusCode,
    event: "issues",
    action: "opened",
  });

  it("keeps events whose every delivery got no answer or a 5xx, newest delivery, oldest first", () => {
    const result = unansweredDeliveries([
      delivery("down-then-500", 1, 500, "newest"),
      delivery("accepted", 2, 202),
      delivery("down", 3, 0),
      delivery("refused", 4, 401),
      delivery("down-then-500", 5, 0, "oldest"),
      delivery("failed-then-accepted", 6, 202),
      delivery("failed-then-accepted", 7, 503),
      delivery("ping", 8, 200),
    ]);
    expect(result.map((d) => [d.guid, d.id])).toEqual([
      ["down", "down-3"],
      ["down-then-500", "newest"],
    ]);
  });
});

describe("githubAppWebhookTarget", () => {
  const base = {
    id: "tgt_1",
    targetKey: "github",
    familyId: "github",
    config: githubCloudTargetConfigSchema.parse({}),
  };
  const full = { clientId: "Iv23li", appPrivateKeyPem: app.privateKey, webhookSecret: "whs" };

  it("accepts a GitHub target with app credentials and a webhook secret", () => {
    expect(githubAppWebhookTarget({ ...base, secrets: full })?.targetKey).toBe("github");
    const { clientId: _, ...withAppId } = { ...full, appId: "12" };
    expect(githubAppWebhookTarget({ ...base, secrets: withAppId })).toBeDefined();
  });

  it("leaves out other families and targets that cannot use the app's webhook", () => {
    expect(githubAppWebhookTarget({ ...base, familyId: "linear", secrets: full })).toBeUndefined();
    const { appPrivateKeyPem: _k, ...noKey } = full;
    const { webhookSecret: _w, ...noWebhook } = full;
    const { clientId: _c, ...noIssuer } = full;
    for (const secrets of [noKey, noWebhook, noIssuer, {}]) {
      expect(githubAppWebhookTarget({ ...base, secrets })).toBeUndefined();
    }
  });
});

describe("nextPageCursor", () => {
  it("takes the cursor of rel=next only", () => {
    const api = "https://api.github.com/app/hook/deliveries";
    expect(
      nextPageCursor(
        `<${api}?per_page=2&cursor=v1_9>; rel="prev", <${api}?per_page=2&cursor=v1_12077215967>; rel="next"`,
      ),
    ).toBe("v1_12077215967");
    expect(nextPageCursor(`<${api}?cursor=v1_1>; rel="prev"`)).toBeUndefined();
    expect(nextPageCursor(`<${api}?page=2>; rel="next"`)).toBeUndefined();
    expect(nextPageCursor(null)).toBeUndefined();
    expect(nextPageCursor("garbage")).toBeUndefined();
  });
});

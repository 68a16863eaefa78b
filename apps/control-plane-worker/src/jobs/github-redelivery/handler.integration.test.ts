import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
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
import { webhookEvents, webhookRedeliveries } from "@keyway/db";
import {
  createGitHubAppWebhookStandIn,
  type GitHubAppWebhookStandIn,
  type GitHubHookDelivery,
} from "@keyway/integrations-definitions/testing/github-app-webhook-stand-in";
import { eq } from "drizzle-orm";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { WorkerDeps } from "../../deps";
import { createTestWorkerDeps } from "../../testing/test-worker";
import { type GitHubRedeliverySettings, reconcileGitHubDeliveries } from "./handler";

/**
 * GitHub App redelivery reconciliation against msw stand-ins for GitHub.com and a GitHub
 * Enterprise Server (shaped from GitHub's REST documentation; they verify the app JWT). A
 * redelivery GitHub makes goes through Keyway's real front door.
 */

function rsaKeyPair() {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}
const cloudApp = rsaKeyPair();
const ghesApp = rsaKeyPair();
const strangerKey = rsaKeyPair();

const HOUR = 3_600_000;
const NOW = new Date("2025-09-01T12:00:00Z");
const hoursAgo = (hours: number) => new Date(NOW.getTime() - hours * HOUR);
const SETTINGS: GitHubRedeliverySettings = { lookbackHours: 24, maxPages: 10, maxPerRun: 50 };

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterAll(() => server.close());

let open: TestApp[] = [];
afterEach(async () => {
  server.resetHandlers();
  await Promise.all(open.map((t) => t.close()));
  open = [];
});

interface AppTarget {
  target: SeededTarget;
  webhookSecret: string;
  github: GitHubAppWebhookStandIn;
}

interface Scenario {
  t: TestApp;
  clock: ReturnType<typeof createTestClock>;
  organizationId: string;
  deps: WorkerDeps & { logger: { lines: string[] } };
  /** A GitHub.com target whose app the stand-in knows. */
  cloud: AppTarget;
  /** Guids whose redeliveries find Keyway still unreachable. */
  down: Set<string>;
}

/** What Keyway's front door answered for a delivery (GitHub's `status_code`). */
async function frontDoor(
  t: TestApp,
  app: Omit<AppTarget, "github">,
  guid: string,
  event = "issues",
) {
  const body = JSON.stringify({ action: "opened", installation: { id: 800 } });
  const response = await t.app.request(`/p/integration/webhooks/${app.target.targetKey}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": guid,
      "x-hub-signature-256": `sha256=${createHmac("sha256", app.webhookSecret).update(body).digest("hex")}`,
    },
    body,
  });
  return response.status;
}

async function scenario(
  settings: Partial<GitHubRedeliverySettings> = {},
  /** The key the cloud target is configured with; the stand-in knows `cloudApp`'s. */
  cloudPrivateKey = cloudApp.privateKey,
): Promise<Scenario> {
  const clock = createTestClock(NOW);
  const t = await createTestApp({ clock });
  open.push(t);
  const organizationId = await seedOrganization(t.deps.database.db, t.clock, "Redelivery org");
  const down = new Set<string>();
  const cloud = await appTarget(t, organizationId, {
    variantId: "github-cloud",
    secrets: { clientId: "Iv23liCloudApp", appPrivateKeyPem: cloudPrivateKey },
    apiBaseUrl: "https://api.github.com",
    publicKeyPem: cloudApp.publicKey,
    issuer: "Iv23liCloudApp",
    down,
  });
  const base = createTestWorkerDeps(t, {
    // Looked up per call so requests go through msw's patched fetch.
    fetch: (input, init) => globalThis.fetch(input, init),
  });
  const deps = {
    ...base,
    settings: { ...base.settings, githubRedelivery: { ...SETTINGS, ...settings } },
  };
  return { t, clock, organizationId, deps, cloud, down };
}

/**
 * A GitHub target with an app and a webhook secret, its stand-in (answering on `apiBaseUrl` for
 * the app whose public key is given), and redeliveries sent to Keyway's front door, except for
 * guids in `down` (Keyway still unreachable: no answer).
 */
async function appTarget(
  t: TestApp,
  organizationId: string,
  input: {
    variantId: string;
    config?: Record<string, unknown>;
    secrets: Record<string, string>;
    apiBaseUrl: string;
    publicKeyPem: string;
    issuer: string;
    down?: Set<string>;
  },
): Promise<AppTarget> {
  const webhookSecret = `whsec-${randomUUID()}`;
  const target = await seedTarget(t.deps.database.db, t.deps, {
    variantId: input.variantId,
    ...(input.config ? { config: input.config } : {}),
    secrets: { ...input.secrets, webhookSecret },
  });
  await seedConnection(t.deps.database.db, t.deps, {
    organizationId,
    target,
    methodId: "github-app",
    externalSubjectId: "800",
  });
  const github = createGitHubAppWebhookStandIn({
    apiBaseUrl: input.apiBaseUrl,
    publicKeyPem: input.publicKeyPem,
    issuer: input.issuer,
    now: () => t.clock.now(),
    deliver: async (delivery: GitHubHookDelivery) =>
      input.down?.has(delivery.guid)
        ? 0
        : frontDoor(t, { target, webhookSecret }, delivery.guid, delivery.event),
  });
  server.use(...github.handlers);
  return { target, webhookSecret, github };
}

async function storedGuids(t: TestApp, target: SeededTarget): Promise<string[]> {
  const rows = await t.deps.database.db
    .select({ guid: webhookEvents.externalDeliveryId })
    .from(webhookEvents)
    .where(eq(webhookEvents.targetId, target.id));
  return rows.map((row) => row.guid).sort();
}

/** The status codes of every delivery GitHub made of an event, oldest first. */
function history(app: AppTarget, guid: string) {
  return app.github
    .deliveriesOf(guid)
    .map((d) => (d.redelivery ? `re:${d.status_code}` : d.status_code));
}

describe("reconcileGitHubDeliveries", () => {
  it("asks GitHub to redeliver what Keyway never stored, once per event", async () => {
    const { t, clock, deps, cloud, down: keywayDown } = await scenario();
    const stored = randomUUID();
    const storedButTimedOut = randomUUID();
    const down = randomUUID();
    const failing = randomUUID();
    const refused = randomUUID();
    const ping = randomUUID();
    const stillDown = randomUUID();
    const outside = randomUUID();
    // Accepted by the front door (stored), as GitHub recorded it.
    expect(await frontDoor(t, cloud, stored)).toBe(202);
    cloud.github.addDelivery({ guid: stored, deliveredAt: hoursAgo(5), statusCode: 202 });
    // Stored, but GitHub gave up waiting for the answer.
    expect(await frontDoor(t, cloud, storedButTimedOut)).toBe(202);
    cloud.github.addDelivery({ guid: storedButTimedOut, deliveredAt: hoursAgo(5), statusCode: 0 });
    // Keyway was down.
    cloud.github.addDelivery({ guid: down, deliveredAt: hoursAgo(4), statusCode: 0 });
    // Keyway failed, and failed again when someone redelivered it by hand: one event.
    cloud.github.addDelivery({ guid: failing, deliveredAt: hoursAgo(6), statusCode: 503 });
    cloud.github.addDelivery({
      guid: failing,
      deliveredAt: hoursAgo(3),
      statusCode: 502,
      redelivery: true,
    });
    // Deliberately refused (a bad signature): a redelivery would be refused again.
    cloud.github.addDelivery({ guid: refused, deliveredAt: hoursAgo(2), statusCode: 401 });
    // Answered at once, never stored.
    cloud.github.addDelivery({
      guid: ping,
      deliveredAt: hoursAgo(2),
      statusCode: 200,
      event: "ping",
    });
    // Keyway is still unreachable when GitHub redelivers this one.
    cloud.github.addDelivery({ guid: stillDown, deliveredAt: hoursAgo(1), statusCode: 0 });
    // Missed, but before the look-back window.
    cloud.github.addDelivery({ guid: outside, deliveredAt: hoursAgo(30), statusCode: 0 });
    keywayDown.add(stillDown);

    const first = await reconcileGitHubDeliveries(deps);
    expect(first).toEqual([
      { targetKey: cloud.target.targetKey, listed: 8, missing: 3, requested: 3, truncated: false },
    ]);
    expect(history(cloud, failing)).toEqual([503, "re:502", "re:202"]);
    expect(history(cloud, down)).toEqual([0, "re:202"]);
    expect(history(cloud, stillDown)).toEqual([0, "re:0"]);
    for (const answered of [stored, storedButTimedOut, refused, ping, outside]) {
      expect(cloud.github.deliveriesOf(answered).every((d) => !d.redelivery)).toBe(true);
    }
    expect(await storedGuids(t, cloud.target)).toEqual(
      [stored, storedButTimedOut, down, failing].sort(),
    );
    const requests = await t.deps.database.db
      .select()
      .from(webhookRedeliveries)
      .where(eq(webhookRedeliveries.targetId, cloud.target.id));
    expect(requests.map((r) => [r.externalDeliveryId, r.responseStatus]).sort()).toEqual(
      [
        [down, 202],
        [failing, 202],
        [stillDown, 202],
      ].sort(),
    );
    // The newest delivery of the event was the one redelivered.
    const failingRequest = requests.find((r) => r.externalDeliveryId === failing);
    expect(failingRequest?.providerDeliveryId).toBe(
      String(cloud.github.deliveriesOf(failing)[1]?.id),
    );

    // A second run asks nothing: stored events are skipped, and the event whose redelivery also
    // failed was asked for once already.
    clock.set(new Date(NOW.getTime() + 10 * 60_000));
    const second = await reconcileGitHubDeliveries(deps);
    expect(second).toEqual([
      { targetKey: cloud.target.targetKey, listed: 11, missing: 0, requested: 0, truncated: false },
    ]);
    expect(history(cloud, stillDown)).toEqual([0, "re:0"]);
    expect(history(cloud, down)).toEqual([0, "re:202"]);
    await deps.jobs.stop();
  });

  it("follows the listing's pages, bounded by the look-back window, maxPages and maxPerRun", async () => {
    const { t, deps, cloud } = await scenario({ maxPages: 2, maxPerRun: 1 });
    // 300 deliveries (3 pages of 100), one every 6 minutes, the oldest 30 h ago;
    // four were missed: on page 1, page 2, page 3, and on page 3 outside the 24 h window.
    const missed = new Map([
      [50, randomUUID()],
      [150, randomUUID()],
      [230, randomUUID()],
      [260, randomUUID()],
    ]);
    for (let i = 0; i < 300; i++) {
      cloud.github.addDelivery({
        guid: missed.get(i) ?? randomUUID(),
        deliveredAt: new Date(NOW.getTime() - i * 6 * 60_000),
        statusCode: missed.has(i) ? 0 : 202,
      });
    }
    const [page1, page2, page3, outside] = [...missed.values()] as [string, string, string, string];

    // Two pages at most, one request per run: the oldest missed event seen goes first.
    expect(await reconcileGitHubDeliveries(deps)).toEqual([
      { targetKey: cloud.target.targetKey, listed: 200, missing: 2, requested: 1, truncated: true },
    ]);
    expect(cloud.github.pagesServed).toBe(2);
    expect(history(cloud, page2)).toEqual([0, "re:202"]);
    expect(history(cloud, page1)).toEqual([0]);

    // With room for ten pages the walk stops at page 3, the first reaching past the window.
    const wider = {
      ...deps,
      settings: { ...deps.settings, githubRedelivery: { ...SETTINGS, maxPages: 10 } },
    };
    expect(await reconcileGitHubDeliveries(wider)).toMatchObject([
      { missing: 2, requested: 2, truncated: false },
    ]);
    expect(cloud.github.pagesServed).toBe(2 + 3);
    expect(history(cloud, page1)).toEqual([0, "re:202"]);
    expect(history(cloud, page3)).toEqual([0, "re:202"]);
    expect(history(cloud, outside)).toEqual([0]);
    expect(await storedGuids(t, cloud.target)).toEqual([page1, page2, page3].sort());
    await deps.jobs.stop();
  });

  it("logs a target whose app GitHub refuses, and still reconciles GitHub Enterprise Server", async () => {
    // The GitHub.com target holds a key that is not its app's: GitHub answers 401.
    const { t, organizationId, deps, cloud, down } = await scenario({}, strangerKey.privateKey);
    const lostOnCloud = randomUUID();
    cloud.github.addDelivery({ guid: lostOnCloud, deliveredAt: hoursAgo(1), statusCode: 0 });
    const ghes = await appTarget(t, organizationId, {
      variantId: "github-enterprise-server",
      config: { webBaseUrl: "https://ghe.example.com" },
      secrets: { appId: "31337", clientId: "Iv1.ghes", appPrivateKeyPem: ghesApp.privateKey },
      apiBaseUrl: "https://ghe.example.com/api/v3",
      publicKeyPem: ghesApp.publicKey,
      // GHES takes the app id as the JWT issuer.
      issuer: "31337",
      down,
    });
    const lostOnGhes = randomUUID();
    ghes.github.addDelivery({ guid: lostOnGhes, deliveredAt: hoursAgo(2), statusCode: 500 });

    expect(await reconcileGitHubDeliveries(deps)).toEqual([
      { targetKey: ghes.target.targetKey, listed: 1, missing: 1, requested: 1, truncated: false },
    ]);
    expect(history(ghes, lostOnGhes)).toEqual([500, "re:202"]);
    expect(await storedGuids(t, ghes.target)).toEqual([lostOnGhes]);
    expect(history(cloud, lostOnCloud)).toEqual([0]);

    const warnings = deps.logger.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.level === "warn");
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: "GitHub webhook redelivery failed for a target",
        targetKey: cloud.target.targetKey,
        message: expect.stringContaining("HTTP 401"),
      }),
    ]);
    const logs = deps.logger.lines.join("\n");
    expect(logs).not.toContain("PRIVATE KEY");
    expect(logs).not.toMatch(/eyJ[\w-]+\.eyJ/);
    await deps.jobs.stop();
  });

  it("leaves GitHub targets alone that cannot authenticate as an app, and GitHub's outages", async () => {
    const { t, deps, cloud } = await scenario();
    // A PAT-only target (webhook secret, no app key): the stand-in would refuse any request.
    await seedTarget(t.deps.database.db, t.deps, {
      variantId: "github-cloud",
      secrets: { webhookSecret: "whsec-pat-only" },
    });
    const lost = randomUUID();
    cloud.github.addDelivery({ guid: lost, deliveredAt: hoursAgo(1), statusCode: 0 });
    cloud.github.unavailable = true;
    expect(await reconcileGitHubDeliveries(deps)).toEqual([]);
    expect(deps.logger.lines.join("\n")).toContain("HTTP 503");

    // Once GitHub is back, the next run catches up.
    cloud.github.unavailable = false;
    expect(await reconcileGitHubDeliveries(deps)).toMatchObject([{ requested: 1 }]);
    expect(history(cloud, lost)).toEqual([0, "re:202"]);
    await deps.jobs.stop();
  });
});

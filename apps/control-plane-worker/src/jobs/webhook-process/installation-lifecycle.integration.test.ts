import { createHmac, generateKeyPairSync, randomUUID } from "node:crypto";
import { createCredentialCache } from "@keyway/control-plane-api/credentials/credential-cache";
import type { FeedMessage } from "@keyway/control-plane-api/events/invalidations";
import {
  type SeededConnection,
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedTarget,
} from "@keyway/control-plane-api/internal/fixtures";
import { createTestApp, type TestApp } from "@keyway/control-plane-api/testing/test-app";
import { auditLog, cachedCredentials, integrationConnections } from "@keyway/db";
import {
  createGitHubAppStandIn,
  type GitHubAppStandIn,
} from "@keyway/integrations-definitions/testing/github-app-stand-in";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestWorkerDeps } from "../../testing/test-worker";
import { processWebhookEvent } from "./handler";

/**
 * GitHub `installation` events, received at the real front door and processed by the worker,
 * mark the installation's connection (SPEC §5 github): `deleted` revokes it, `suspend` puts it in
 * error until `unsuspend`; each drops cached installation tokens and tells gateways, in the
 * transaction that processes the event. Payloads come from the GitHub stand-in.
 */

const SECRET = "gh-webhook-secret-lifecycle";

let t: TestApp;
let github: GitHubAppStandIn;
let organizationId: string;
let target: SeededTarget;
const events: FeedMessage[] = [];

beforeAll(async () => {
  t = await createTestApp();
  t.deps.invalidations.subscribe((event) => events.push(event));
  const { publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  // Only its webhook payloads are used here.
  github = createGitHubAppStandIn({
    webBaseUrl: "https://github.com",
    apiBaseUrl: "https://api.github.com",
    appSlug: "keyway-lifecycle",
    edition: "cloud",
    clientId: "Iv23liLifecycle",
    clientSecret: "unused",
    publicKeyPem: publicKey,
    issuer: "Iv23liLifecycle",
    callbackUrl: "https://keyway.example.test/callback",
    now: () => t.clock.now(),
  });
  organizationId = await seedOrganization(t.deps.database.db, t.clock, "Lifecycle org");
  target = await seedTarget(t.deps.database.db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: SECRET },
  });
});
afterAll(async () => {
  await t.close();
});

async function installationConnection(): Promise<SeededConnection & { installationId: number }> {
  const installation = github.addInstallation({ account: "acme", users: ["octocat"] });
  const connection = await seedConnection(t.deps.database.db, t.deps, {
    organizationId,
    target,
    methodId: "github-app",
    externalSubjectId: String(installation.id),
  });
  // A token minted earlier, as credential resolution caches it.
  await createCredentialCache({
    database: t.deps.database,
    keyRing: t.deps.keyRing,
    clock: t.clock,
  }).obtain(
    {
      connectionId: connection.id,
      organizationId,
      resolver: "github_app_installation_token",
      scope: { installationId: installation.id },
    },
    async () => ({
      value: "ghs_cached_before_the_event",
      expiresAt: new Date(t.clock.now().getTime() + 3_600_000),
    }),
  );
  return { ...connection, installationId: installation.id };
}

/** GitHub's delivery of an `installation` event through the front door; then processing. */
async function deliver(action: string, installationId: number): Promise<string> {
  const body = JSON.stringify(github.installationEvent(action, installationId));
  const response = await t.app.request(`/p/integration/webhooks/${target.targetKey}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "installation",
      "x-github-delivery": randomUUID(),
      "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`,
    },
    body,
  });
  expect(response.status).toBe(202);
  const { id } = (await response.json()) as { id: string };
  const deps = createTestWorkerDeps(t);
  await processWebhookEvent(deps, id);
  await deps.jobs.stop();
  return id;
}

async function connectionRow(id: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(integrationConnections)
    .where(eq(integrationConnections.id, id));
  return row;
}

async function cachedTokens(connectionId: string) {
  return t.deps.database.db
    .select()
    .from(cachedCredentials)
    .where(eq(cachedCredentials.connectionId, connectionId));
}

async function audited(connectionId: string, action: string) {
  return t.deps.database.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.subjectId, connectionId), eq(auditLog.action, action)));
}

async function waitForEvent(match: (event: FeedMessage) => boolean) {
  const deadline = Date.now() + 5_000;
  while (!events.some(match)) {
    if (Date.now() > deadline) throw new Error("invalidation not received");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("GitHub installation events", () => {
  it("suspend puts the connection in error and unsuspend makes it active again", async () => {
    const connection = await installationConnection();
    expect(await cachedTokens(connection.id)).toHaveLength(1);

    const suspended = await deliver("suspend", connection.installationId);
    expect(await connectionRow(connection.id)).toMatchObject({
      status: "error",
      lastError: expect.stringContaining("suspended"),
    });
    expect(await cachedTokens(connection.id)).toEqual([]);
    expect(await audited(connection.id, "connection.error")).toEqual([
      expect.objectContaining({
        actor: "provider",
        details: expect.objectContaining({ reason: "installation_suspended", eventId: suspended }),
      }),
    ]);
    await waitForEvent((e) => e.type === "connection.updated" && e.connectionId === connection.id);

    // A redelivery of the same suspension changes nothing more.
    await deliver("suspend", connection.installationId);
    expect(await audited(connection.id, "connection.error")).toHaveLength(1);

    await deliver("unsuspend", connection.installationId);
    expect(await connectionRow(connection.id)).toMatchObject({ status: "active", lastError: null });
    expect(await audited(connection.id, "connection.restored")).toHaveLength(1);
  });

  it("deleted revokes the connection and tells gateways", async () => {
    const connection = await installationConnection();
    await deliver("deleted", connection.installationId);
    expect(await connectionRow(connection.id)).toMatchObject({ status: "revoked" });
    expect(await cachedTokens(connection.id)).toEqual([]);
    expect(await audited(connection.id, "connection.revoked")).toEqual([
      expect.objectContaining({
        details: expect.objectContaining({ reason: "installation_deleted" }),
      }),
    ]);
    await waitForEvent((e) => e.type === "connection.revoked" && e.connectionId === connection.id);
  });

  it("leaves other connections and other events alone", async () => {
    const connection = await installationConnection();
    const bystander = await installationConnection();
    await deliver("deleted", connection.installationId);
    expect(await connectionRow(bystander.id)).toMatchObject({ status: "active" });
    expect(await cachedTokens(bystander.id)).toHaveLength(1);

    // `created` is not a lifecycle change of an existing connection.
    await deliver("created", bystander.installationId);
    expect(await connectionRow(bystander.id)).toMatchObject({ status: "active" });
    expect(await cachedTokens(bystander.id)).toHaveLength(1);
  });
});

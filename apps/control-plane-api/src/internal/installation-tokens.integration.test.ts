import { generateKeyPairSync } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { cachedCredentials, createDatabase, integrationConnections } from "@keyway/db";
import {
  createGitHubAppStandIn,
  type GitHubAppStandIn,
} from "@keyway/integrations-definitions/testing/github-app-stand-in";
import { eq } from "drizzle-orm";
import { http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../app";
import { CACHED_CREDENTIAL_MARGIN_MS } from "../credentials/credential-cache";
import { apiModules } from "../modules";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import {
  type SeededConnection,
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedSession,
  seedTarget,
} from "./fixtures";

/**
 * GitHub App installation tokens are minted once per installation, repositories and permissions
 * and shared until five minutes before they expire — across sessions, concurrent resolutions and
 * control-plane replicas — instead of once per gateway cache miss. msw stands in for GitHub and
 * counts the token endpoint's calls.
 */

const CLIENT_ID = "Iv23liTokenCache";
const { privateKey: appKeyPem, publicKey: appPublicPem } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

const server = setupServer();
const clock = createTestClock();
let t: TestApp;
let github: GitHubAppStandIn;
let organizationId: string;
let target: SeededTarget;

beforeAll(async () => {
  t = await createTestApp({ clock, fetch: (input, init) => globalThis.fetch(input, init) });
  github = createGitHubAppStandIn({
    webBaseUrl: "https://github.com",
    apiBaseUrl: "https://api.github.com",
    appSlug: "keyway-cache",
    edition: "cloud",
    clientId: CLIENT_ID,
    clientSecret: "unused-here",
    publicKeyPem: appPublicPem,
    issuer: CLIENT_ID,
    callbackUrl: "https://keyway.example.test/callback",
    now: () => clock.now(),
  });
  server.listen({ onUnhandledRequest: "error" });
  server.use(...github.handlers);
  organizationId = await seedOrganization(t.deps.database.db, clock);
  target = await seedTarget(t.deps.database.db, t.deps, {
    variantId: "github-cloud",
    secrets: { clientId: CLIENT_ID, appPrivateKeyPem: appKeyPem },
  });
});
afterAll(async () => {
  server.close();
  await t.close();
});

async function installationConnection(): Promise<SeededConnection> {
  const installation = github.addInstallation({
    account: "acme",
    repositories: ["widgets", "gadgets"],
  });
  return seedConnection(t.deps.database.db, t.deps, {
    organizationId,
    target,
    methodId: "github-app",
    externalSubjectId: String(installation.id),
  });
}

async function sessionRoute(connection: SeededConnection, config: Record<string, unknown>) {
  const session = await seedSession(t.deps.database.db, t.deps, {
    organizationId,
    bindings: [{ connection, config }],
  });
  const route = session.plan.routes.find((r) => r.credential?.resolver !== undefined);
  if (route === undefined) throw new Error("no resolver route");
  return { sessionId: session.sessionId, routeId: route.id };
}

async function resolve(
  at: { sessionId: string; routeId: string },
  app: Pick<TestApp, "app"> = t,
): Promise<{ status: number; body: { value: string; expiresAt: string } }> {
  const response = await app.app.request("/internal/v1/credentials/resolve", {
    method: "POST",
    headers: {
      authorization: `Bearer ${await t.gatewayAssertion()}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(at),
  });
  return {
    status: response.status,
    body: (await response.json()) as { value: string; expiresAt: string },
  };
}

const mintsFor = (connection: SeededConnection) =>
  github.tokenRequests.filter((r) => r.installationId === connection.externalSubjectId);

describe("installation token cache", () => {
  it("mints once for concurrent resolutions and once more only near expiry", async () => {
    const connection = await installationConnection();
    const at = await sessionRoute(connection, {
      repositories: ["acme/widgets"],
      permissions: { contents: "read" },
    });
    const answers = await Promise.all(Array.from({ length: 12 }, () => resolve(at)));
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    expect(new Set(answers.map((a) => a.body.value)).size).toBe(1);
    expect(mintsFor(connection)).toHaveLength(1);

    // Later resolutions, from the same or another session, reuse it.
    expect((await resolve(at)).body.value).toBe(answers[0]?.body.value);
    expect(mintsFor(connection)).toHaveLength(1);

    // Stored encrypted: the row never holds the token.
    const [row] = await t.deps.database.db
      .select()
      .from(cachedCredentials)
      .where(eq(cachedCredentials.connectionId, connection.id));
    expect(row?.valueCiphertext).not.toContain(answers[0]?.body.value ?? "");

    // Five minutes before expiry it is minted again.
    const expiresAt = new Date(answers[0]?.body.expiresAt ?? "").getTime();
    clock.set(new Date(expiresAt - CACHED_CREDENTIAL_MARGIN_MS - 1_000));
    expect((await resolve(at)).body.value).toBe(answers[0]?.body.value);
    clock.set(new Date(expiresAt - CACHED_CREDENTIAL_MARGIN_MS));
    const renewed = await resolve(at);
    expect(renewed.body.value).not.toBe(answers[0]?.body.value);
    expect(mintsFor(connection)).toHaveLength(2);
  });

  it("shares one token per installation, repositories and permissions across sessions", async () => {
    const connection = await installationConnection();
    const first = await sessionRoute(connection, {
      repositories: ["acme/widgets", "acme/gadgets"],
      permissions: { contents: "read", metadata: "read" },
    });
    const sameScope = await sessionRoute(connection, {
      repositories: ["acme/gadgets", "acme/widgets"],
      permissions: { metadata: "read", contents: "read" },
    });
    const otherScope = await sessionRoute(connection, {
      repositories: ["acme/widgets", "acme/gadgets"],
      permissions: { contents: "write", metadata: "read" },
    });
    const a = await resolve(first);
    const b = await resolve(sameScope);
    const c = await resolve(otherScope);
    expect(b.body.value).toBe(a.body.value);
    expect(c.body.value).not.toBe(a.body.value);
    expect(mintsFor(connection).map((r) => r.body)).toEqual([
      { repositories: ["widgets", "gadgets"], permissions: { contents: "read", metadata: "read" } },
      {
        repositories: ["widgets", "gadgets"],
        permissions: { contents: "write", metadata: "read" },
      },
    ]);
  });

  it("mints once when two replicas resolve at the same time", async () => {
    const connection = await installationConnection();
    const at = await sessionRoute(connection, { repositories: ["acme/widgets"] });
    // A second app on the same database: its own routes, its own in-process single flight.
    const replica = { app: createApp(t.deps, apiModules) };
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => resolve(at, i % 2 === 0 ? t : replica)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
    expect(new Set(answers.map((a) => a.body.value)).size).toBe(1);
    expect(mintsFor(connection)).toHaveLength(1);
  });

  it("mints once across replicas while GitHub is slower than the idle-transaction timeout", async () => {
    // Two replicas whose sessions end after 300 ms idle inside a transaction, and a GitHub
    // answering in 1.5 s: no transaction may stay open across GitHub's answer, and the replica
    // that does not mint waits for the other's token.
    const replicas = [1, 2].map(() => {
      const database = createDatabase(t.databaseUrl, {
        max: 3,
        timeouts: { idleInTransactionMs: 300 },
      });
      return { database, app: createApp({ ...t.deps, database }, apiModules) };
    });
    server.use(
      http.post("https://api.github.com/app/installations/:id/access_tokens", async () => {
        await sleep(1_500);
        // Nothing returned: the stand-in's own handler answers.
      }),
    );
    try {
      const connection = await installationConnection();
      const at = await sessionRoute(connection, { repositories: ["acme/widgets"] });
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, i) => resolve(at, replicas[i % 2]!)),
      );
      expect(
        answers.map((a) => a.status),
        JSON.stringify(answers.map((a) => a.body)),
      ).toEqual(Array(6).fill(200));
      expect(new Set(answers.map((a) => a.body.value)).size).toBe(1);
      expect(mintsFor(connection)).toHaveLength(1);
    } finally {
      server.resetHandlers(...github.handlers);
      await Promise.all(replicas.map((replica) => replica.database.close()));
    }
  });

  it("drops the cached tokens of a connection the provider refuses, and refuses after", async () => {
    const connection = await installationConnection();
    const at = await sessionRoute(connection, { repositories: ["acme/widgets"] });
    expect((await resolve(at)).status).toBe(200);
    // Another scope on the same installation, minted while it was suspended: refused for good.
    github.suspend(Number(connection.externalSubjectId));
    const other = await sessionRoute(connection, { repositories: ["acme/gadgets"] });
    const refused = await resolve(other);
    expect(refused.status).toBe(502);
    const [row] = await t.deps.database.db
      .select()
      .from(integrationConnections)
      .where(eq(integrationConnections.id, connection.id));
    expect(row?.status).toBe("error");
    expect(
      await t.deps.database.db
        .select()
        .from(cachedCredentials)
        .where(eq(cachedCredentials.connectionId, connection.id)),
    ).toEqual([]);
    expect((await resolve(at)).status).toBe(409);
  });
});

import { type SigningKeyPair, signGatewayAssertion } from "@keyway/crypto";
import { auditLog, createDatabase, type DatabaseTimeouts, runMigrations } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { createTestDatabase } from "@keyway/test-harness";
import { desc, eq } from "drizzle-orm";
import { createApp } from "../app";
import type { AppDeps, AppSettings } from "../deps";
import { createMemoryLogger } from "../logger";
import { apiModules } from "../modules";
import { createEphemeralDeps, INTERNAL_AUDIENCE, TEST_GATEWAY_ID } from "./ephemeral-deps";

export { INTERNAL_AUDIENCE, TEST_GATEWAY_ID } from "./ephemeral-deps";

/** A clock tests can move; starts at the real time so JWT libraries see sane instants. */
export function createTestClock(
  start = new Date(),
): Clock & { set(d: Date): void; advance(ms: number): void } {
  let now = start.getTime();
  return {
    now: () => new Date(now),
    set: (d) => {
      now = d.getTime();
    },
    advance: (ms) => {
      now += ms;
    },
  };
}

export interface TestAppOptions {
  clock?: Clock;
  settings?: Partial<AppSettings>;
  fetch?: AppDeps["fetch"];
  oidc?: AppDeps["oidc"];
  consoleOidc?: AppDeps["consoleOidc"];
  /** Bounds on the app's database connections (none by default). */
  databaseTimeouts?: DatabaseTimeouts;
  /**
   * The URL the app's database handle connects to, given the test database's TCP URL (e.g.
   * through a `startTcpProxy`); migrations always run directly.
   */
  routeDatabase?: (url: string) => Promise<string>;
}

/**
 * The real API on a fresh database of the run's embedded PostgreSQL, with fresh keys. Returns
 * the app (drive it with `app.request`) and helpers for the common set-up steps.
 */
export async function createTestApp(options: TestAppOptions = {}) {
  const testDatabase = await createTestDatabase("api");
  await runMigrations(testDatabase.url);
  const appDatabaseUrl = options.routeDatabase
    ? await options.routeDatabase(testDatabase.tcpUrl)
    : testDatabase.url;
  const database = createDatabase(appDatabaseUrl, {
    max: 5,
    ...(options.databaseTimeouts ? { timeouts: options.databaseTimeouts } : {}),
  });
  const clock = options.clock ?? createTestClock();
  const logger = createMemoryLogger();
  const { deps, signingKey, gatewayKey, operatorToken } = await createEphemeralDeps({
    database,
    clock,
    logger,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.oidc ? { oidc: options.oidc } : {}),
    ...(options.consoleOidc ? { consoleOidc: options.consoleOidc } : {}),
    ...(options.settings ? { settings: options.settings } : {}),
  });
  const invalidations = deps.invalidations;
  const app = createApp(deps, apiModules);

  /** JSON request with a bearer token; returns status and parsed body. */
  async function call(
    method: string,
    path: string,
    token: string | undefined,
    body?: unknown,
    headers: Record<string, string> = {},
    // biome-ignore lint/suspicious/noExplicitAny: tests read response JSON freely and assert on it.
  ): Promise<{ status: number; body: any; text: string; headers: Headers }> {
    const init: RequestInit = {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      ...(body !== undefined
        ? { body: typeof body === "string" ? body : JSON.stringify(body) }
        : {}),
    };
    const response = await app.request(path, init);
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed, text, headers: response.headers };
  }

  /** Creates an organization; returns its id and admin token, plus member and viewer tokens. */
  async function createOrganization(name = "Acme") {
    const created = await call("POST", "/v1/operator/organizations", operatorToken, { name });
    if (created.status !== 201)
      throw new Error(`create organization: ${created.status} ${created.text}`);
    const admin: string = created.body.adminToken.token;
    const member = await call("POST", "/v1/api-tokens", admin, { name: "member", role: "member" });
    const viewer = await call("POST", "/v1/api-tokens", admin, { name: "viewer", role: "viewer" });
    return {
      id: created.body.organization.id as string,
      admin,
      member: member.body.token as string,
      viewer: viewer.body.token as string,
    };
  }

  /** A fresh gateway assertion for internal API calls. */
  async function gatewayAssertion(key: SigningKeyPair = gatewayKey, gatewayId = TEST_GATEWAY_ID) {
    return signGatewayAssertion({
      gatewayId,
      privateJwk: key.privateJwk,
      kid: key.kid,
      audience: INTERNAL_AUDIENCE,
      clock,
    });
  }

  const replicas: Array<() => Promise<void>> = [];

  /**
   * Another control-plane replica: the same database, keys and settings, with everything a
   * process holds of its own — database pool, invalidation feed (its own LISTEN connection),
   * spent-assertion claims through its own pool, and the app's in-memory caches. Closed with
   * the test app.
   */
  async function createReplica() {
    const replicaDatabase = createDatabase(appDatabaseUrl, { max: 5 });
    const replica = await createEphemeralDeps({
      database: replicaDatabase,
      clock,
      logger,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      keys: { gatewayKey, signingKey, keyRing: deps.keyRing },
    });
    const replicaDeps: AppDeps = {
      ...replica.deps,
      registry: deps.registry,
      keyRing: deps.keyRing,
      settings: deps.settings,
    };
    replicas.push(async () => {
      await replica.deps.auditSealer.close();
      await replica.deps.jobs.stop();
      await replica.deps.invalidations.close();
      await replicaDatabase.close();
    });
    return { app: createApp(replicaDeps, apiModules), deps: replicaDeps };
  }

  async function close() {
    for (const closeReplica of replicas.splice(0)) await closeReplica();
    await deps.auditSealer.close();
    await deps.jobs.stop();
    await invalidations.close();
    await database.close();
    await testDatabase.drop();
  }

  return {
    app,
    deps,
    /** The test database, reached directly (not through `routeDatabase`). */
    databaseUrl: testDatabase.url,
    clock,
    logger,
    operatorToken,
    signingKey,
    gatewayKey,
    call,
    createOrganization,
    gatewayAssertion,
    createReplica,
    close,
  };
}

export type TestApp = Awaited<ReturnType<typeof createTestApp>>;

/** The newest audit entry with `action` in the test app's database, if any. */
export async function lastAuditEntry(app: TestApp, action: string) {
  const [entry] = await app.deps.database.db
    .select()
    .from(auditLog)
    .where(eq(auditLog.action, action))
    .orderBy(desc(auditLog.seq))
    .limit(1);
  return entry;
}

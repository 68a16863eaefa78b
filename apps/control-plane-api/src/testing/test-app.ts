import {
  createGatewayAssertionVerifier,
  createKeyRing,
  createSessionTokenSigner,
  generateMasterKey,
  generateSigningKeyPair,
  generateToken,
  hashToken,
  type SigningKeyPair,
  signGatewayAssertion,
} from "@keyway/crypto";
import { createDatabase, runMigrations } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { createTestDatabase } from "@keyway/test-harness";
import { createApp } from "../app";
import type { AppDeps, AppSettings } from "../deps";
import { startInvalidationFeed } from "../events/invalidations";
import { createMemoryLogger } from "../logger";
import { apiModules } from "../modules";

export const INTERNAL_AUDIENCE = "keyway-internal";
export const TEST_GATEWAY_ID = "gateway-test";

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
}

/**
 * The real API on a fresh database of the run's embedded PostgreSQL, with fresh keys. Returns
 * the app (drive it with `app.request`) and helpers for the common set-up steps.
 */
export async function createTestApp(options: TestAppOptions = {}) {
  const testDatabase = await createTestDatabase("api");
  const database = createDatabase(testDatabase.url, { max: 5 });
  await runMigrations(testDatabase.url);
  const clock = options.clock ?? createTestClock();
  const signingKey = await generateSigningKeyPair();
  const gatewayKey = await generateSigningKeyPair();
  const operatorToken = generateToken("operator");
  const logger = createMemoryLogger();
  const invalidations = await startInvalidationFeed(database.sql);
  const deps: AppDeps = {
    database,
    registry: createCatalogueRegistry(),
    keyRing: createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] }),
    sessionSigner: createSessionTokenSigner({
      keys: [{ privateJwk: signingKey.privateJwk, kid: signingKey.kid }],
      currentKid: signingKey.kid,
      issuer: "keyway",
      audience: "keyway-gateway",
      clock,
    }),
    gatewayVerifier: createGatewayAssertionVerifier({
      trusted: [{ gatewayId: TEST_GATEWAY_ID, publicJwk: gatewayKey.publicJwk }],
      audience: INTERNAL_AUDIENCE,
      clock,
    }),
    invalidations,
    ...(options.oidc ? { oidc: options.oidc } : {}),
    clock,
    logger,
    fetch: options.fetch ?? globalThis.fetch,
    settings: {
      operatorTokenHashes: [hashToken(operatorToken)],
      publicUrl: "http://127.0.0.1:8080",
      gatewayProxyUrl: "http://127.0.0.1:8081",
      gatewayCaPem: "-----BEGIN CERTIFICATE-----\ntest-ca\n-----END CERTIFICATE-----\n",
      sessionTokenTtlSeconds: 900,
      sessionMaxLifetimeSeconds: 24 * 3600,
      defaultEgressPolicy: "deny",
      maxJsonBodyBytes: 1024 * 1024,
      ...options.settings,
    },
  };
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

  async function close() {
    await invalidations.close();
    await database.close();
    await testDatabase.drop();
  }

  return {
    app,
    deps,
    clock,
    logger,
    operatorToken,
    signingKey,
    gatewayKey,
    call,
    createOrganization,
    gatewayAssertion,
    close,
  };
}

export type TestApp = Awaited<ReturnType<typeof createTestApp>>;

import {
  createGatewayAssertionVerifier,
  createKeyRing,
  createSessionTokenSigner,
  generateMasterKey,
  generateSigningKeyPair,
  generateToken,
  hashToken,
  type KeyRing,
  type SigningKeyPair,
} from "@keyway/crypto";
import type { DatabaseHandle } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { createJobQueue } from "@keyway/jobs";
import { createAuditSealer } from "../audit/sealer";
import { createPostgresSpentAssertions } from "../auth/spent-assertions";
import type { AppDeps, AppSettings } from "../deps";
import { startInvalidationFeed } from "../events/invalidations";
import type { Logger } from "../logger";
import { createApiMetrics, observeDatabaseAndJobs } from "../metrics";

export const INTERNAL_AUDIENCE = "keyway-internal";
export const TEST_GATEWAY_ID = "gateway-test";
/** Issuer and audience of the session tokens these deps sign (what a gateway must verify). */
export const SESSION_ISSUER = "keyway";
export const SESSION_AUDIENCE = "keyway-gateway";

/**
 * App dependencies with fresh keys on a given database: for tests and benchmarks, which need the
 * real app but not a config file. Returns the keys and operator token the caller signs with.
 */
export async function createEphemeralDeps(options: {
  database: DatabaseHandle;
  clock: Clock;
  logger: Logger;
  fetch?: AppDeps["fetch"];
  oidc?: AppDeps["oidc"];
  consoleOidc?: AppDeps["consoleOidc"];
  settings?: Partial<AppSettings>;
  /** The audit sealer's timer (benchmarks); tests seal on demand (`deps.auditSealer.sealNow`). */
  auditSealIntervalMs?: number;
  /**
   * The keys of an existing control plane when these deps are another replica of it (same
   * database, same keys: master key ring, trusted gateway key, session-signing key). Fresh keys
   * otherwise.
   */
  keys?: { gatewayKey: SigningKeyPair; signingKey: SigningKeyPair; keyRing?: KeyRing };
  tracer?: AppDeps["tracer"];
}) {
  const { clock } = options;
  const keyRing =
    options.keys?.keyRing ??
    createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
  const signingKey = options.keys?.signingKey ?? (await generateSigningKeyPair());
  const gatewayKey = options.keys?.gatewayKey ?? (await generateSigningKeyPair());
  const operatorToken = generateToken("operator");
  const jobs = createJobQueue(options.database, { role: "producer" });
  const metrics = createApiMetrics();
  observeDatabaseAndJobs(metrics.registry, { database: options.database, poolSize: 5, jobs });
  const deps: AppDeps = {
    database: options.database,
    registry: createCatalogueRegistry(),
    keyRing,
    sessionSigner: createSessionTokenSigner({
      keys: [{ privateJwk: signingKey.privateJwk, kid: signingKey.kid }],
      currentKid: signingKey.kid,
      issuer: SESSION_ISSUER,
      audience: SESSION_AUDIENCE,
      clock,
    }),
    gatewayVerifier: createGatewayAssertionVerifier({
      trusted: [{ gatewayId: TEST_GATEWAY_ID, publicJwk: gatewayKey.publicJwk }],
      audience: INTERNAL_AUDIENCE,
      clock,
      spentAssertions: createPostgresSpentAssertions({
        database: options.database,
        clock,
        logger: options.logger,
      }),
    }),
    invalidations: await startInvalidationFeed(options.database.sql),
    jobs,
    auditSealer: createAuditSealer({
      db: options.database.db,
      keyRing,
      clock,
      logger: options.logger,
      ...(options.auditSealIntervalMs !== undefined
        ? { intervalMs: options.auditSealIntervalMs }
        : {}),
    }),
    ...(options.oidc ? { oidc: options.oidc } : {}),
    ...(options.consoleOidc ? { consoleOidc: options.consoleOidc } : {}),
    clock,
    logger: options.logger,
    metrics,
    ...(options.tracer ? { tracer: options.tracer } : {}),
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
      requestTimeoutMs: 10_000,
      webhookBodyLimitBytes: 1024 * 1024,
      webhookSecretRotationOverlapHours: 24,
      allowPrivateWebhookSubscribers: false,
      allowedRedirectOrigins: [],
      tokenRequestTimeoutMs: 10_000,
      ...options.settings,
    },
  };
  return { deps, signingKey, gatewayKey, keyRing, operatorToken };
}

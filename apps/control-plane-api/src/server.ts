import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type KeywayConfig, listenOn, readSettingFile, requireSetting } from "@keyway/config";
import {
  createGatewayAssertionVerifier,
  createKeyRing,
  createSessionTokenSigner,
  parsePrivateKey,
} from "@keyway/crypto";
import { createDatabase, runMigrations } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { configuredQueueSettings, createJobQueue } from "@keyway/jobs";
import { createTracing, type SpanExporter } from "@keyway/observability";
import { createRemoteJWKSet } from "jose";
import { createApiListener } from "./app";
import { createAuditSealer, DEFAULT_SEAL_INTERVAL_MS } from "./audit/sealer";
import { createOidcVerifier } from "./auth/oidc";
import { createPostgresSpentAssertions } from "./auth/spent-assertions";
import { type AppDeps, appSettingsFromConfig } from "./deps";
import { startInvalidationFeed } from "./events/invalidations";
import { createLogger, type Logger } from "./logger";
import { createApiMetrics, observeDatabaseAndJobs } from "./metrics";
import { apiModules } from "./modules";
import { syncTargets } from "./targets/sync";

export interface RunningControlPlane {
  url: string;
  deps: AppDeps;
  close(): Promise<void>;
}

const systemClock = { now: () => new Date() };

/**
 * Builds every dependency from the loaded config, migrates the database, syncs targets from the
 * registry and the config file, and starts listening. `databaseUrl` is the configured URL or the
 * embedded server's.
 */
export async function startControlPlane(
  config: KeywayConfig,
  options: {
    databaseUrl: string;
    logger?: Logger;
    /**
     * The clock of the API's own decisions (token expiry and refresh, session liveness, audit
     * times); tests move it. Token signatures and assertion checks keep the system clock.
     */
    clock?: Clock;
    /** Spans go here instead of the configured export (tests: an in-memory exporter). */
    spanExporter?: SpanExporter;
  },
): Promise<RunningControlPlane> {
  const clock = options.clock ?? systemClock;
  const logger =
    options.logger ?? createLogger({ service: "control-plane-api", level: config.log.level });
  const tracing = createTracing({
    service: "control-plane-api",
    traces: config.telemetry.traces,
    otlpEndpoint: config.telemetry.otlp_endpoint,
    ...(options.spanExporter ? { exporter: options.spanExporter } : {}),
  });
  // Files the config names are read first: a wrong path fails before the database is touched.
  const caPem = await readSettingFile(config.gateway.ca_cert_path, "gateway.ca_cert_path");
  await runMigrations(options.databaseUrl);
  const database = createDatabase(options.databaseUrl, {
    applicationName: "keyway-api",
    max: config.database.pool_size,
    timeouts: {
      connectMs: config.database.connect_timeout_ms,
      statementMs: config.database.statement_timeout_ms,
      lockMs: config.database.lock_timeout_ms,
      idleInTransactionMs: config.database.idle_in_transaction_timeout_ms,
    },
  });
  const signing = requireSetting(config.keys.session_signing, "keys.session_signing");
  const signingKeys = await Promise.all(
    signing.keys.map(async (key) => ({
      kid: key.kid,
      privateJwk: (await parsePrivateKey(key.private_key)).privateJwk,
    })),
  );
  const registry = createCatalogueRegistry();
  const keyRing = createKeyRing(requireSetting(config.keys.master, "keys.master"));
  const invalidations = await startInvalidationFeed(database.sql, logger);
  const jobs = createJobQueue(database, {
    role: "producer",
    // The same as the worker's: whichever process prepares the queues last sets them.
    queueSettings: configuredQueueSettings({
      webhookDelivery: {
        connectTimeoutMs: config.webhooks.delivery.connect_timeout_ms,
        responseTimeoutMs: config.webhooks.delivery.response_timeout_ms,
      },
    }),
  });
  await jobs.prepare();
  const metrics = createApiMetrics();
  observeDatabaseAndJobs(metrics.registry, {
    database,
    poolSize: config.database.pool_size,
    jobs,
  });

  const deps: AppDeps = {
    database,
    registry,
    keyRing,
    sessionSigner: createSessionTokenSigner({
      keys: signingKeys,
      currentKid: signing.current_kid,
      issuer: config.sessions.issuer,
      audience: config.sessions.audience,
      clock: systemClock,
    }),
    gatewayVerifier: createGatewayAssertionVerifier({
      trusted: config.internal.gateways.map((g) => ({ gatewayId: g.id, publicJwk: g.public_jwk })),
      audience: config.internal.audience,
      clock: systemClock,
      // In PostgreSQL, so a replay is refused by every replica, not only the one first used.
      spentAssertions: createPostgresSpentAssertions({
        database,
        clock: systemClock,
        logger,
      }),
    }),
    invalidations,
    jobs,
    auditSealer: createAuditSealer({
      db: database.db,
      keyRing,
      clock: systemClock,
      logger,
      intervalMs: DEFAULT_SEAL_INTERVAL_MS,
    }),
    ...(config.oidc ? await oidcDeps(config.oidc) : {}),
    clock,
    logger,
    metrics,
    ...(tracing.tracer ? { tracer: tracing.tracer } : {}),
    fetch: globalThis.fetch,
    settings: appSettingsFromConfig(config, caPem),
  };

  await syncTargets(database.db, {
    registry,
    keyRing,
    clock: systemClock,
    configTargets: config.targets,
  });

  const server = createServer(createApiListener(deps, apiModules).listener);
  await listenOn(server, config.api.host, config.api.port, "api.port").catch(
    async (error: unknown) => {
      await deps.auditSealer.close();
      await jobs.stop();
      await invalidations.close();
      await database.close();
      throw error;
    },
  );
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("control plane did not bind a TCP port");
  // Gateways hold `GET /internal/v1/events` open for as long as they run, so `server.close()`
  // would wait for them forever: close() cuts those streams (gateways reconnect with backoff and
  // resync) and lets every other request finish.
  const eventStreams = new Set<Duplex>();
  server.on("request", (request: IncomingMessage) => {
    if (!request.url?.startsWith("/internal/v1/events")) return;
    const socket = request.socket;
    eventStreams.add(socket);
    socket.once("close", () => eventStreams.delete(socket));
  });
  logger.info("control plane listening", { host: address.address, port: address.port });
  return {
    url: `http://${config.api.host}:${address.port}`,
    deps,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of eventStreams) socket.destroy();
      await closed;
      // After the last request: what it recorded is sealed and checkpointed before the pool goes.
      await deps.auditSealer.close();
      await jobs.stop();
      await invalidations.close();
      await database.close();
      await tracing.shutdown();
    },
  };
}

/**
 * The OIDC verifier, and the console's sign-in client when `console_client_id` is set. Without an
 * explicit `jwks_url`, or with a console client, the issuer's discovery document is read once here.
 */
async function oidcDeps(
  oidc: NonNullable<KeywayConfig["oidc"]>,
): Promise<Pick<AppDeps, "oidc" | "consoleOidc">> {
  let discovery: Record<string, unknown> = {};
  if (oidc.jwks_url === undefined || oidc.console_client_id !== undefined) {
    const response = await fetch(
      `${oidc.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`,
    );
    const body: unknown = response.ok ? await response.json() : undefined;
    if (typeof body !== "object" || body === null) {
      throw new Error(`oidc: ${oidc.issuer} has no usable discovery document; set oidc.jwks_url`);
    }
    discovery = body as Record<string, unknown>;
  }
  const jwksUrl = oidc.jwks_url ?? discovery.jwks_uri;
  if (typeof jwksUrl !== "string") {
    throw new Error(`oidc: ${oidc.issuer} has no usable discovery document; set oidc.jwks_url`);
  }
  const verifier = createOidcVerifier({
    issuer: oidc.issuer,
    audience: oidc.audience,
    getKey: createRemoteJWKSet(new URL(jwksUrl)),
    orgClaim: oidc.org_claim,
    roleClaim: oidc.role_claim,
    roleMap: oidc.role_map,
    clock: systemClock,
  });
  if (oidc.console_client_id === undefined) return { oidc: verifier };
  const { authorization_endpoint: authorizationEndpoint, token_endpoint: tokenEndpoint } =
    discovery;
  if (typeof authorizationEndpoint !== "string" || typeof tokenEndpoint !== "string") {
    throw new Error(
      `oidc: ${oidc.issuer}'s discovery document names no authorization or token endpoint (needed by oidc.console_client_id)`,
    );
  }
  return {
    oidc: verifier,
    consoleOidc: {
      clientId: oidc.console_client_id,
      scopes: oidc.console_scopes ?? "openid",
      authorizationEndpoint,
      tokenEndpoint,
    },
  };
}

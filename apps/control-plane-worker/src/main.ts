import {
  listenOn,
  loadConfig,
  requireSetting,
  runServiceProcess,
  type StoppableService,
} from "@keyway/config";
import { observeDatabaseAndJobs } from "@keyway/control-plane-api/metrics";
import { createKeyRing } from "@keyway/crypto";
import { createDatabase, embeddedDatabaseUrl, runMigrations } from "@keyway/db";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { configuredQueueSettings, createJobQueue } from "@keyway/jobs";
import { createLogger, createMetricsServer } from "@keyway/observability";
import { workerSettings } from "./deps";
import { createSubscriberClient } from "./jobs/webhook-deliver/subscriber-request";
import { createWorkerMetrics } from "./metrics";
import { createWorker } from "./worker";

/**
 * Entry for `control-plane-worker`: loads keyway.toml (+ KEYWAY_* overrides), connects to the
 * platform's database (`database.url`, else the embedded PostgreSQL the API runs), applies pending
 * migrations (serialised with the API's) and works every queue until SIGINT/SIGTERM.
 */
async function start(): Promise<StoppableService> {
  const config = await loadConfig();
  const logger = createLogger({ service: "control-plane-worker", level: config.log.level });
  const keyRing = createKeyRing(requireSetting(config.keys.master, "keys.master"));
  const url = config.database.url ?? embeddedDatabaseUrl(config.database.embedded.port);
  await runMigrations(url);
  const settings = workerSettings(config);
  const database = createDatabase(url, {
    applicationName: "keyway-worker",
    max: config.database.pool_size,
    // The API's bounds, except an idle transaction's: a delivery attempt holds its delivery row
    // locked across the subscriber's answer (up to `webhooks.delivery.*` timeouts), and must not
    // be ended by the server while it waits (`jobs/webhook-deliver/handler.ts`).
    timeouts: {
      connectMs: config.database.connect_timeout_ms,
      statementMs: config.database.statement_timeout_ms,
      lockMs: config.database.lock_timeout_ms,
    },
  });
  const jobs = createJobQueue(database, {
    role: "worker",
    maintenanceIntervalSeconds: config.worker.maintenance_interval_seconds,
    queueSettings: configuredQueueSettings(settings),
  });
  const metrics = createWorkerMetrics();
  observeDatabaseAndJobs(metrics.registry, {
    database,
    poolSize: config.database.pool_size,
    jobs,
  });
  const metricsServer = createMetricsServer(metrics.registry);
  const worker = createWorker({
    database,
    jobs,
    keyRing,
    registry: createCatalogueRegistry(),
    clock: { now: () => new Date() },
    logger,
    metrics,
    fetch: globalThis.fetch,
    random: Math.random,
    subscribers: createSubscriberClient(),
    settings,
  });
  const closeMetrics = () =>
    new Promise<void>((resolve) => {
      if (!metricsServer.listening) return resolve();
      metricsServer.close(() => resolve());
      metricsServer.closeAllConnections();
    });
  try {
    await listenOn(
      metricsServer,
      config.worker.metrics_host,
      config.worker.metrics_port,
      "worker.metrics_port",
    );
    await worker.start();
  } catch (error) {
    await closeMetrics();
    await database.close();
    throw error;
  }
  logger.info("worker started", {
    concurrency: config.worker.concurrency,
    metrics: metricsServer.address(),
  });
  return {
    async close() {
      await worker.stop();
      await closeMetrics();
      await database.close();
    },
  };
}

await runServiceProcess("control-plane-worker", start);

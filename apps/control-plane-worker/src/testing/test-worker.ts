import { keywayConfigSchema } from "@keyway/config";
import { createMemoryLogger } from "@keyway/control-plane-api/logger";
import type { TestApp } from "@keyway/control-plane-api/testing/test-app";
import { configuredQueueSettings, createJobQueue } from "@keyway/jobs";
import { type WorkerDeps, type WorkerSettings, workerSettings } from "../deps";
import { createSubscriberClient } from "../jobs/webhook-deliver/subscriber-request";
import { createWorker, type Worker } from "../worker";

/**
 * Worker dependencies on a test app's database, key ring, registry and clock: the API and the
 * worker of one test share everything a deployment's share. `start()` runs the real worker.
 */
export function createTestWorkerDeps(
  app: TestApp,
  options: {
    settings?: Partial<WorkerSettings>;
    fetch?: WorkerDeps["fetch"];
    clock?: WorkerDeps["clock"];
    random?: WorkerDeps["random"];
  } = {},
): WorkerDeps & { logger: ReturnType<typeof createMemoryLogger> } {
  const database = app.deps.database;
  const settings: WorkerSettings = {
    // The configuration's defaults, with a worker sized for tests.
    ...workerSettings(keywayConfigSchema.parse({})),
    concurrency: 2,
    pollingIntervalSeconds: 0.5,
    shutdownTimeoutMs: 2_000,
    // Test subscribers listen on loopback.
    webhookDelivery: {
      connectTimeoutMs: 2_000,
      responseTimeoutMs: 5_000,
      allowPrivateSubscribers: true,
    },
    ...options.settings,
  };
  return {
    database,
    jobs: createJobQueue(database, {
      role: "worker",
      maintenanceIntervalSeconds: 1,
      queueSettings: configuredQueueSettings(settings),
    }),
    keyRing: app.deps.keyRing,
    registry: app.deps.registry,
    clock: options.clock ?? app.clock,
    logger: createMemoryLogger(),
    fetch: options.fetch ?? globalThis.fetch,
    random: options.random ?? Math.random,
    subscribers: createSubscriberClient(),
    settings,
  };
}

export async function startTestWorker(deps: WorkerDeps): Promise<Worker> {
  const worker = createWorker(deps);
  await worker.start();
  return worker;
}

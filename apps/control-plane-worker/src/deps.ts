import type { Logger } from "@keyway/control-plane-api/logger";
import type { KeyRing } from "@keyway/crypto";
import type { DatabaseHandle } from "@keyway/db";
import type { Clock, FetchLike, IntegrationRegistry } from "@keyway/integrations-core";
import type { JobQueue } from "@keyway/jobs";

/**
 * Everything the worker's jobs need, passed in explicitly (as the API's `AppDeps`): tests build
 * these from real components, `main.ts` from the config file.
 */
export interface WorkerDeps {
  database: DatabaseHandle;
  jobs: JobQueue;
  keyRing: KeyRing;
  registry: IntegrationRegistry;
  clock: Clock;
  logger: Logger;
  /** Outbound HTTP to providers (GitHub redelivery, OAuth refresh). */
  fetch: FetchLike;
  settings: WorkerSettings;
}

export interface WorkerSettings {
  /** Jobs of each queue run at once. */
  concurrency: number;
  pollingIntervalSeconds: number;
  /** Running jobs get this long to finish on stop; then they are released to other workers. */
  shutdownTimeoutMs: number;
}

import type { WorkerDeps } from "./deps";
import { registerJobs, workerJobs } from "./register-jobs";

export interface Worker {
  /** Prepares the job schema and queues, then starts working every queue. */
  start(): Promise<void>;
  /**
   * Stops fetching; running jobs get `shutdownTimeoutMs` to finish, then are released (failed
   * back to the queue, retried elsewhere). A SIGKILLed worker's jobs come back when they expire.
   */
  stop(): Promise<void>;
}

/** The control-plane worker (SPEC §3, §8): pg-boss consumers and cron on the platform's database. */
export function createWorker(deps: WorkerDeps): Worker {
  deps.jobs.boss.on("error", (error: Error) => {
    deps.logger.warn("job queue maintenance failed", { error: error.message });
  });
  return {
    async start() {
      await deps.jobs.prepare();
      await registerJobs(
        deps.jobs.boss,
        workerJobs(deps),
        deps.settings,
        deps.logger,
        deps.metrics,
      );
    },
    async stop() {
      await deps.jobs.stop(deps.settings.shutdownTimeoutMs);
      await deps.subscribers.close();
    },
  };
}

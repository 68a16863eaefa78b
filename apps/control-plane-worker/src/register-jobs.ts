import { createOAuth2Tokens } from "@keyway/control-plane-api/credentials/oauth2-tokens";
import type { Logger } from "@keyway/control-plane-api/logger";
import {
  githubRedeliveryQueue,
  oauth2RefreshQueue,
  type QueueDefinition,
  targetHealthQueue,
  webhookDeliverQueue,
  webhookProcessQueue,
  webhookRetentionQueue,
} from "@keyway/jobs";
import type PgBoss from "pg-boss";
import type { z } from "zod";
import type { WorkerDeps } from "./deps";
import { describeJobError } from "./job-errors";
import { reconcileGitHubDeliveries } from "./jobs/github-redelivery/handler";
import { refreshExpiringTokens } from "./jobs/oauth2-refresh/handler";
import { probeTargetHealth } from "./jobs/target-health/handler";
import {
  deliverWebhook,
  deliverWebhooks,
  recordDeliveryFailure,
} from "./jobs/webhook-deliver/handler";
import {
  processWebhookEvent,
  processWebhookEvents,
  recordProcessingFailure,
} from "./jobs/webhook-process/handler";
import { runWebhookRetention } from "./jobs/webhook-retention/handler";
import type { WorkerMetrics } from "./metrics";

/**
 * The one place jobs are registered with pg-boss (CONVENTIONS "Layout of the worker"): each
 * queue of `@keyway/jobs` and the handler that runs its jobs.
 */
export interface JobRegistration<Q extends QueueDefinition = QueueDefinition> {
  queue: Q;
  run(payload: z.output<Q["payload"]>): Promise<unknown>;
  /**
   * Runs the jobs of a fetched batch together (one transaction instead of one each). When it
   * throws, each job runs alone with `run`, so one job's fault is never its neighbours'.
   */
  runBatch?(payloads: z.output<Q["payload"]>[]): Promise<unknown>;
  /** After a failed run; `final` when pg-boss will not retry it again. */
  onFailure?(payload: z.output<Q["payload"]>, error: unknown, final: boolean): Promise<void>;
  /** Jobs of this queue run at once; default `worker.concurrency`. */
  concurrency?: number;
  /**
   * Jobs fetched at once, up to `concurrency` (default `FETCH_BATCH`) — or more when `runBatch`
   * keeps its own in-flight work within `concurrency` (`boundsConcurrency`).
   */
  fetchBatch?: number;
  /**
   * `runBatch` keeps its in-flight work within `concurrency` itself (the fan-out sends a batch's
   * attempts `concurrency` at a time): one pg-boss worker, fetching `fetchBatch` jobs at a time.
   */
  boundsConcurrency?: true;
}

function job<Q extends QueueDefinition>(registration: JobRegistration<Q>): JobRegistration {
  return registration as unknown as JobRegistration;
}

export function workerJobs(deps: WorkerDeps): JobRegistration[] {
  const tokens = createOAuth2Tokens({
    ...deps,
    tokenRequestTimeoutMs: deps.settings.oauth2.tokenRequestTimeoutMs,
  });
  return [
    job({
      queue: webhookProcessQueue,
      run: ({ eventId }) => processWebhookEvent(deps, eventId),
      // A whole batch of events in one fetch, one fan-out transaction and one transaction of
      // first attempts, sent `concurrency` at a time (`makeFirstAttempts`). pg-boss's fetch
      // sorts every waiting job of the queue (a deep queue makes each fetch cost milliseconds of
      // PostgreSQL's time whatever its size), and every statement of a batch costs about the same
      // for 16 rows as for 64: `pnpm bench:webhooks` (draining thousands at concurrency 16) spent
      // ≈ 2.4 ms of worker and PostgreSQL CPU per delivery with batches of 16 and ≈ 1.5 ms with
      // 64 (docs/benchmarks.md "Webhooks"; two workers of 64 cost more, and did not deliver
      // faster). A slow subscriber cannot hold a batch for long: its first attempts go to
      // `webhook-deliver` jobs once it has been slow, and a batch's attempts not sent within
      // one attempt's timeouts too.
      fetchBatch: 64,
      boundsConcurrency: true,
      runBatch: (payloads) =>
        processWebhookEvents(
          deps,
          payloads.map(({ eventId }) => eventId),
        ),
      onFailure: ({ eventId }, error, final) =>
        recordProcessingFailure(deps, eventId, error, final),
    }),
    job({
      queue: webhookDeliverQueue,
      run: (payload) => deliverWebhook(deps, payload),
      runBatch: (payloads) => deliverWebhooks(deps, payloads),
      onFailure: (payload, error, final) => recordDeliveryFailure(deps, payload, error, final),
    }),
    job({ queue: webhookRetentionQueue, run: () => runWebhookRetention(deps), concurrency: 1 }),
    job({
      queue: githubRedeliveryQueue,
      run: () => reconcileGitHubDeliveries(deps),
      concurrency: 1,
    }),
    job({
      queue: oauth2RefreshQueue,
      run: () => refreshExpiringTokens({ ...deps, tokens }),
      concurrency: 1,
    }),
    job({ queue: targetHealthQueue, run: () => probeTargetHealth(deps), concurrency: 1 }),
  ];
}

/**
 * Jobs one pg-boss worker fetches at once. Fetching and completing are a statement (and a commit)
 * each, so taking jobs in fours cuts pg-boss's share of a job by four (`pnpm bench:webhooks`,
 * docs/benchmarks.md); a batch is fetched again only once all its jobs ran, so a small batch keeps
 * one slow job (a subscriber at its timeout) from holding many others back.
 */
const FETCH_BATCH = 4;

/**
 * Runs up to `concurrency` jobs per queue at once — `ceil(concurrency / 4)` pg-boss workers, each
 * fetching up to four jobs and running them side by side, or for a queue whose batch handler
 * bounds its own concurrency one worker fetching `fetchBatch` — and the cron schedules of
 * scheduled queues. A payload that does not parse is logged and completed: it would never succeed.
 *
 * Each job succeeds or fails alone: pg-boss 10 completes or fails a fetched batch as a whole, so
 * a job that throws is failed here, by its id (retried or dead per its queue's settings), and
 * pg-boss's completion of the batch then completes only the jobs still active — the ones that
 * succeeded.
 *
 * A worker that has run its jobs looks for the next ones at once; only a fetch that found nothing
 * waits `pollingIntervalSeconds`. pg-boss 10 waits the interval after every fetch, jobs or not,
 * which capped each worker at one batch per interval (`pnpm bench:webhooks`: 32 deliveries/s for
 * 16 workers at 0.5 s, whatever the machine); waking the worker (`notifyWorker`) from its handler
 * skips that wait.
 */
export async function registerJobs(
  boss: PgBoss,
  registrations: readonly JobRegistration[],
  settings: Pick<WorkerDeps["settings"], "concurrency" | "pollingIntervalSeconds">,
  logger: Logger,
  metrics?: WorkerMetrics,
): Promise<void> {
  for (const registration of registrations) {
    const { queue } = registration;
    type Parsed = { job: PgBoss.JobWithMetadata<unknown>; payload: unknown };
    const parse = (job: PgBoss.JobWithMetadata<unknown>): Parsed | undefined => {
      const payload = queue.payload.safeParse(job.data);
      if (payload.success) return { job, payload: payload.data };
      metrics?.jobs.inc(queue.name, "dropped");
      logger.error("job payload does not match its queue; dropped", {
        queue: queue.name,
        jobId: job.id,
      });
      return undefined;
    };
    const runBatch = async (parsed: Parsed[]): Promise<boolean> => {
      if (registration.runBatch === undefined || parsed.length < 2) return false;
      const started = performance.now();
      try {
        await registration.runBatch(parsed.map(({ payload }) => payload));
      } catch {
        return false;
      }
      const seconds = (performance.now() - started) / 1000;
      for (let i = 0; i < parsed.length; i++) {
        metrics?.jobs.inc(queue.name, "completed");
        metrics?.duration.observe(seconds, queue.name);
      }
      return true;
    };
    const runJob = async ({ job, payload }: Parsed) => {
      const started = performance.now();
      const observe = (outcome: string) => {
        metrics?.jobs.inc(queue.name, outcome);
        metrics?.duration.observe((performance.now() - started) / 1000, queue.name);
      };
      try {
        await registration.run(payload);
        observe("completed");
      } catch (error) {
        const final = job.retryCount >= job.retryLimit;
        observe(final ? "failed" : "retried");
        logger.warn("job failed", {
          queue: queue.name,
          jobId: job.id,
          retry: job.retryCount,
          final,
          error: describeJobError(error),
        });
        await registration.onFailure?.(payload, error, final).catch((failure: unknown) => {
          logger.error("recording a job failure failed", {
            queue: queue.name,
            jobId: job.id,
            error: describeJobError(failure),
          });
        });
        // This job alone: its neighbours in the batch are completed by pg-boss afterwards.
        await boss
          .fail(queue.name, job.id, { message: describeJobError(error) })
          .catch((failure: unknown) => {
            logger.error("failing a job failed", {
              queue: queue.name,
              jobId: job.id,
              error: describeJobError(failure),
            });
          });
      }
    };
    const concurrency = registration.concurrency ?? settings.concurrency;
    const fetchBatch = registration.fetchBatch ?? FETCH_BATCH;
    const workers = registration.boundsConcurrency ? 1 : Math.ceil(concurrency / fetchBatch);
    const batchSize = registration.boundsConcurrency
      ? fetchBatch
      : Math.ceil(concurrency / workers);
    // One job at a time per slot (a batch that failed as a whole): never more than `concurrency`.
    const runJobs = async (parsed: Parsed[]) => {
      let next = 0;
      const slot = async () => {
        for (let item = parsed[next++]; item !== undefined; item = parsed[next++]) {
          await runJob(item);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, parsed.length) }, slot));
    };
    for (let i = 0; i < workers; i++) {
      let workerId: string | undefined;
      workerId = await boss.work(
        queue.name,
        {
          batchSize,
          includeMetadata: true,
          pollingIntervalSeconds: settings.pollingIntervalSeconds,
        },
        async (jobs: PgBoss.JobWithMetadata<unknown>[]) => {
          try {
            const parsed = jobs.map(parse).filter((item) => item !== undefined);
            if (!(await runBatch(parsed))) await runJobs(parsed);
          } finally {
            // The fetch after this one starts at once (pg-boss calls a handler only with jobs).
            if (workerId !== undefined) boss.notifyWorker(workerId);
          }
        },
      );
    }
    if (queue.schedule !== undefined) {
      await boss.schedule(queue.name, queue.schedule, {}, { tz: "UTC" });
    }
  }
}
